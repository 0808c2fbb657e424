"""cxstats: link employee engagement with customer satisfaction, find brand advocates.

The library never imports streamlit (tests/test_import_rule.py proves it); the dashboard in
app.py and pages/ calls into it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# python-pptx (the report) brings lxml, and openpyxl then writes workbooks with lxml: other bytes for
# the shipped demo files and a carriage return in a cell read back as a line feed. Keep openpyxl's
# own writer, as before (set before any openpyxl import; a user's explicit setting wins).
os.environ.setdefault("OPENPYXL_LXML", "False")

__version__ = "0.1.0"

ROLES = ("leader", "marketing", "manager", "admin")


class CxStatsError(ValueError):
    """An error the user can cause and fix; the message says what to fix.

    ``problems`` carries every individual problem (e.g. one per invalid cell) when there are
    several; ``str(err)`` is the summary line.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])
        self.n_problems = len(self.problems)  # may exceed len(problems) when a long list is capped


class AccessDenied(CxStatsError):
    """A role asked for data it may not see (DESIGN.md, roles table)."""


@dataclass(frozen=True)
class Viewer:
    """Who is asking: a role and, for managers, the units they may see.

    Library functions that return data take a Viewer and refuse or filter (DESIGN.md).
    """

    role: str = "admin"
    units: tuple[str, ...] = field(default_factory=tuple)
    name: str = "local admin"

    def __post_init__(self):
        if self.role not in ROLES:
            raise CxStatsError(f"unknown role {self.role!r}; use one of {', '.join(ROLES)}")

    @property
    def sees_employee_data(self) -> bool:
        return self.role != "marketing"

    @property
    def sees_customers(self) -> bool:
        return self.role in ("marketing", "admin", "leader")

    def require_employee_data(self) -> None:
        if not self.sees_employee_data:
            raise AccessDenied("marketing may not see employee survey data")

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise AccessDenied(f"role {self.role!r} may not do this (needs {' or '.join(roles)})")

    def unit_filter(self) -> tuple[str, ...] | None:
        """Units this viewer is limited to, or None for all units."""
        return tuple(self.units) if self.role == "manager" else None


ADMIN = Viewer("admin", (), "local admin")
