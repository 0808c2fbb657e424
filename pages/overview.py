"""Overview: headline figures, data freshness, the linkage finding in one sentence, what next."""

import ui

ctx = ui.page_setup("Overview")
ui.not_available("The overview")
