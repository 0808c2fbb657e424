"""Take the README's screenshots of the real app (headless Debian chromium, 1280x800).

    python docs/screenshots/take_screenshots.py

Starts `streamlit run app.py` on a scratch copy of the demo database, as the local admin, and
writes overview.png, upload.png and data.png here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
PORT = 8765
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the app did not start")


def settle(page, heading: str, timeout: float = 120_000) -> None:
    """Wait for a heading, then until Streamlit has finished running the script."""
    page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout)
    page.wait_for_timeout(3000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    page.wait_for_timeout(1000)


def main() -> int:
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from cxstats import demo

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "shots.duckdb"
        demo.build_demo(db)
        env = dict(os.environ, CXSTATS_DB=str(db), CXSTATS_DEMO="0")
        env.pop("CXSTATS_USERS", None)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.port",
                str(PORT),
                "--server.headless",
                "true",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://localhost:{PORT}"
        try:
            wait_ready(url)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(url + "/overview")
                settle(page, "Data freshness")
                page.screenshot(path=str(OUT / "overview.png"))
                page.goto(url + "/upload")
                settle(page, "Upload")
                page.locator('[data-testid="stSelectbox"]').first.click()
                page.get_by_role("option", name="engagement:").first.click()
                page.wait_for_timeout(2000)
                page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
                    str(ROOT / "data" / "demo" / "engagement_messy_error.xlsx")
                )
                page.get_by_text("problem(s) found").first.wait_for(timeout=120_000)
                settle(page, "Upload")
                page.get_by_text("problem(s) found").first.scroll_into_view_if_needed()
                page.wait_for_timeout(500)
                page.screenshot(path=str(OUT / "upload.png"))
                page.goto(url + "/data")
                settle(page, "Settings")
                page.screenshot(path=str(OUT / "data.png"))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
