"""Headless Debian chromium + chromium-driver through Selenium, shared by the browser tests."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import free_port, skip_or_fail

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def chromium() -> Iterator[object]:
    """A Chrome driver with the browser console logged; the body of a module-scoped fixture."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("selenium is not installed (pip install 'fusionrec[dev]')")
    if not (os.path.exists(CHROMIUM) and shutil.which(DRIVER)):
        skip_or_fail(
            "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = 60.0) -> object:
    """Poll ``script`` in the page until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {script}")


def screenshot(driver, name: str, *, whole_page: bool = True) -> None:
    """With FUSIONREC_SCREENSHOTS=DIR, save the page as DIR/name (``whole_page``: the window grown
    to the page's height, up to 6,000 px, then set back to 1400 x 1000)."""
    folder = os.environ.get("FUSIONREC_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    if not whole_page:
        driver.save_screenshot(str(Path(folder) / name))
        return
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(int(height) + 40, 6000))
    driver.save_screenshot(str(Path(folder) / name))
    driver.set_window_size(1400, 1000)


def console_errors(driver) -> list[dict]:
    """The browser console's SEVERE entries."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@contextmanager
def served(app: Any, timeout: float = 60.0, port: int | None = None, **config: Any) -> Iterator[str]:
    """Run the ASGI ``app`` under uvicorn in a thread on ``port`` (default: a free one); yield its
    base URL. ``config``: more `uvicorn.Config` options (log_level defaults to "warning")."""
    import uvicorn

    options = {"log_level": "warning", **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port or free_port(), **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started, "the app did not start"
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
