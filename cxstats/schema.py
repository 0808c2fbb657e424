"""Canonical tables: one table-driven definition of every data kind (DESIGN.md, "Data kinds").

Each kind lists its fields with a type, whether it is required, an allowed range and the header
synonyms a spreadsheet may use. ``ingest`` maps and validates against this; ``store`` creates the
tables from it, so the two never drift apart.

Field types:
- ``id``: identifier kept as text ("00042" stays "00042"; a spreadsheet number 42.0 -> "42")
- ``text``: free text
- ``date`` / ``timestamp``
- ``int`` / ``float``: numbers, with an optional inclusive range
- ``money``: DECIMAL(18,2)
- ``bool``: yes/no, true/false, 1/0
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SQL_TYPES = {
    "id": "VARCHAR",
    "text": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "float": "DOUBLE",
    "money": "DECIMAL(18,2)",
    "bool": "BOOLEAN",
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = False
    lo: float | None = None
    hi: float | None = None
    synonyms: tuple[str, ...] = ()

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]

    @property
    def range_text(self) -> str:
        """'1-5', or '-1 to 1' when a dash would read as a minus sign."""
        sep = " to " if self.lo is not None and self.lo < 0 else "-"
        return f"{self.lo:g}{sep}{self.hi:g}"


@dataclass(frozen=True)
class Kind:
    name: str
    fields: tuple[Field, ...]
    # groups of fields of which at least one must be present (feedback: csat and/or nps)
    one_of: tuple[tuple[str, ...], ...] = ()
    # natural key used to skip rows already stored (DESIGN.md, Batches)
    key: tuple[str, ...] = ()
    description: str = ""

    @property
    def table(self) -> str:
        return self.name

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)


UNIT_SYNONYMS = (
    "unit",
    "unitid",
    "store",
    "storeid",
    "storenumber",
    "storeno",
    "branch",
    "branchid",
    "team",
    "teamid",
    "site",
    "siteid",
    "location",
    "locationid",
    "shop",
    "shopid",
    "outlet",
)
CUSTOMER_SYNONYMS = (
    "customer",
    "customerid",
    "customerno",
    "customernumber",
    "clientid",
    "client",
    "memberid",
    "accountid",
    "custid",
)

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "units",
            (
                Field("unit_id", "id", True, synonyms=UNIT_SYNONYMS + ("code",)),
                Field("unit_name", "text", synonyms=("name", "storename", "unitname", "branchname", "teamname")),
                Field("region", "text", synonyms=("area", "district", "zone")),
                Field("headcount", "int", lo=0, hi=1_000_000, synonyms=("employees", "staff", "fte")),
                Field("aliases", "text", synonyms=("alias", "othernames", "alsoknownas", "aka")),
            ),
            key=("unit_id",),
            description="one row per store/team/unit",
        ),
        Kind(
            "engagement",
            (
                Field("unit_id", "id", True, synonyms=UNIT_SYNONYMS),
                Field(
                    "survey_date",
                    "date",
                    True,
                    synonyms=(
                        "date",
                        "surveydate",
                        "responsedate",
                        "submitted",
                        "submittedat",
                        "completed",
                        "completedat",
                        "timestamp",
                    ),
                ),
                Field("respondent_id", "id", synonyms=("respondent", "responseid", "employeeid", "anonid")),
                Field("wave", "text", synonyms=("surveywave", "round", "survey", "cycle")),
                Field(
                    "enps",
                    "int",
                    lo=0,
                    hi=10,
                    synonyms=("enpsscore", "recommendasplacetowork", "employeenps", "wouldrecommend"),
                ),
                Field("comment", "text", synonyms=("comments", "freetext", "remarks", "verbatim")),
            ),
            key=("respondent_id", "survey_date"),
            description="employee survey, one row per respondent; other numeric 1..k columns are items",
        ),
        Kind(
            "feedback",
            (
                Field("unit_id", "id", True, synonyms=UNIT_SYNONYMS),
                Field(
                    "date",
                    "date",
                    True,
                    synonyms=(
                        "date",
                        "feedbackdate",
                        "responsedate",
                        "surveydate",
                        "visitdate",
                        "createdat",
                        "created",
                    ),
                ),
                Field(
                    "csat",
                    "int",
                    lo=1,
                    hi=5,
                    synonyms=("csatscore", "satisfaction", "customersatisfaction", "overallsatisfaction", "rating"),
                ),
                Field("nps", "int", lo=0, hi=10, synonyms=("npsscore", "likelihoodtorecommend", "recommend", "ltr")),
                Field("response_id", "id", synonyms=("responseid", "feedbackid", "ticketid", "caseid", "id")),
                Field("customer_id", "id", synonyms=CUSTOMER_SYNONYMS),
                Field("channel", "text", synonyms=("source", "medium", "contactchannel")),
                Field("comment", "text", synonyms=("comments", "feedback", "verbatim", "remarks", "text")),
                Field("contacted_at", "timestamp", synonyms=("contacted", "receivedat", "openedat", "contactedat")),
                Field(
                    "responded_at", "timestamp", synonyms=("responded", "answeredat", "repliedat", "firstresponseat")
                ),
            ),
            one_of=(("csat", "nps"),),
            key=("response_id",),
            description="customer survey answers and service contacts",
        ),
        Kind(
            "purchases",
            (
                Field("customer_id", "id", True, synonyms=CUSTOMER_SYNONYMS),
                Field(
                    "order_date",
                    "date",
                    True,
                    synonyms=("orderdate", "date", "purchasedate", "purchasedat", "transactiondate", "orderedat"),
                ),
                Field(
                    "amount",
                    "money",
                    True,
                    lo=-1e12,
                    hi=1e12,
                    synonyms=("amount", "total", "value", "netamount", "revenue", "sales", "price", "linetotal"),
                ),
                Field(
                    "order_id",
                    "id",
                    synonyms=("orderid", "orderno", "ordernumber", "transactionid", "invoice", "invoiceno", "receipt"),
                ),
                Field("unit_id", "id", synonyms=UNIT_SYNONYMS),
            ),
            key=("order_id", "line_no"),
            description="orders or order lines; a negative amount is a return",
        ),
        Kind(
            "mentions",
            (
                Field("customer_id", "id", synonyms=CUSTOMER_SYNONYMS),
                Field("handle", "text", synonyms=("username", "user", "author", "screenname", "account")),
                Field(
                    "posted_at",
                    "timestamp",
                    True,
                    synonyms=("posted", "date", "postdate", "createdat", "publishedat", "timestamp"),
                ),
                Field("platform", "text", synonyms=("network", "site", "source", "channel")),
                Field("text", "text", synonyms=("post", "message", "content", "body", "mention", "comment")),
                Field("followers", "bigint", lo=0, hi=1e12, synonyms=("followercount", "followerscount", "audience")),
                Field("likes", "bigint", lo=0, hi=1e12, synonyms=("likecount", "favourites", "favorites", "reactions")),
                Field("shares", "bigint", lo=0, hi=1e12, synonyms=("sharecount", "retweets", "reposts")),
                Field("sentiment", "float", lo=-1, hi=1, synonyms=("sentimentscore", "polarity")),
                Field("replied_at", "timestamp", synonyms=("replied", "responseat", "respondedat", "answeredat")),
            ),
            one_of=(("customer_id", "handle"),),
            description="social and forum posts about the brand",
        ),
        Kind(
            "customers",
            (
                Field("customer_id", "id", True, synonyms=CUSTOMER_SYNONYMS),
                Field("name", "text", synonyms=("customername", "fullname", "clientname")),
                Field("email", "text", synonyms=("emailaddress", "mail", "e-mail")),
                Field("handle", "text", synonyms=("socialhandle", "username", "twitter", "instagram")),
                Field(
                    "marketing_consent",
                    "bool",
                    synonyms=("consent", "marketingconsent", "optin", "marketingoptin", "emailoptin", "gdprconsent"),
                ),
                Field("consent_date", "date", synonyms=("consentdate", "optindate", "consentedat")),
            ),
            key=("customer_id",),
            description="customer master data; a later upload updates a customer",
        ),
        Kind(
            "rewards",
            (
                Field("customer_id", "id", True, synonyms=CUSTOMER_SYNONYMS),
                Field("reward_date", "date", True, synonyms=("date", "rewarddate", "rewardedat", "sentat")),
                Field("reward_type", "text", True, synonyms=("type", "reward", "rewardtype", "gift", "kind")),
                Field("value", "money", lo=-1e12, hi=1e12, synonyms=("amount", "rewardvalue", "cost")),
                Field("note", "text", synonyms=("notes", "comment", "reason")),
            ),
            description="rewards given to advocates",
        ),
        Kind(
            "reorgs",
            (
                Field(
                    "from_unit",
                    "id",
                    True,
                    synonyms=(
                        "from",
                        "fromunit",
                        "oldunit",
                        "oldstore",
                        "predecessor",
                        "formerunit",
                        "fromstore",
                        "unit",
                        "store",
                    ),
                ),
                Field(
                    "to_unit",
                    "id",
                    True,
                    synonyms=("to", "tounit", "newunit", "newstore", "successor", "intounit", "tostore"),
                ),
                Field(
                    "effective_date",
                    "date",
                    True,
                    synonyms=("date", "effective", "effectivedate", "asof", "from_date", "startdate"),
                ),
                Field("note", "text", synonyms=("notes", "comment", "reason", "description")),
            ),
            key=("from_unit", "to_unit"),
            description="re-organisations: renames and merges (one or several from -> one to), splits (one from -> several to)",
        ),
    )
}


def normalise_header(text: object) -> str:
    """Header matching ignores case, spaces, underscores and punctuation."""
    return re.sub(r"[^0-9a-z]", "", str(text).strip().lower())


def header_lookup(kind: str) -> dict[str, str]:
    """Normalised header -> canonical field for one kind (the field's own name wins)."""
    k = KINDS[kind]
    out: dict[str, str] = {}
    for f in k.fields:
        for s in f.synonyms:
            out.setdefault(normalise_header(s), f.name)
    for f in k.fields:  # the canonical name always maps to itself
        out[normalise_header(f.name)] = f.name
    return out


# Likert labels -> position on a k-point scale (the preview says which scale was inferred).
LIKERT_5 = {
    "stronglydisagree": 1,
    "disagree": 2,
    "neutral": 3,
    "neitheragreenordisagree": 3,
    "neitheragreeordisagree": 3,
    "agree": 4,
    "stronglyagree": 5,
}
LIKERT_7 = {
    "stronglydisagree": 1,
    "disagree": 2,
    "somewhatdisagree": 3,
    "slightlydisagree": 3,
    "neutral": 4,
    "neitheragreenordisagree": 4,
    "neitheragreeordisagree": 4,
    "somewhatagree": 5,
    "slightlyagree": 5,
    "agree": 6,
    "stronglyagree": 7,
}
MISSING_TOKENS = {"", "na", "n/a", "nan", "none", "null", "-", "—", "#n/a", "dontknow", "don't know"}
TOTAL_TOKENS = {"total", "grandtotal", "totals", "sum", "overall", "alltotal", "subtotal"}
