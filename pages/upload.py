"""Upload: pick a kind, drop a file, preview and check it, then load it as one batch."""

import ui

ctx = ui.page_setup("Upload", roles=("admin", "manager", "marketing"))
ui.not_available("Uploading")
