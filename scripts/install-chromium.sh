#!/usr/bin/env bash
# Debian's chromium for the browser tests (Playwright drives it; `playwright install` cannot download here).
set -e
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
else
  echo "note: /usr/bin/chromium missing and not root; browser tests will be skipped (sudo apt-get install chromium)" >&2
fi
