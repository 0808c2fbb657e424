"""Data: batch history (undo for admin), data quality per table, export audit log, settings."""

import ui

ctx = ui.page_setup("Data", roles=("admin", "leader"))
ui.not_available("The data page")
