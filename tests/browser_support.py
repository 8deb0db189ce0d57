"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driving the studio page:
shared by ``tests/test_studio_browser.py`` and ``benchmarks/ui.py``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
TIMEOUT_S = 180


def chromium(downloads: Path | None = None, size: str = "1400,2300"):
    """A headless Chromium webdriver (downloads saved to ``downloads``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={size}",
                "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"):
        opts.add_argument(arg)
    if downloads is not None:
        opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                               "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    if downloads is not None:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def until(what, check, timeout=TIMEOUT_S):
    """``check()``'s first truthy value, polled every 0.1 s; AssertionError after ``timeout``."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def status(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "p2p-status").text


def toasts(driver) -> str:
    """The text of the page's error / warning messages."""
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".toast-body, .toast-wrap"))


def open_page(driver, url) -> float:
    """Load the studio; seconds until the upload field is there."""
    from selenium.webdriver.common.by import By

    t0 = time.perf_counter()
    driver.get(url)
    until("the page", lambda: driver.find_elements(By.CSS_SELECTOR, "#p2p-upload input[type=file]"))
    return time.perf_counter() - t0


def upload(driver, path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#p2p-upload input[type=file]").send_keys(str(path))
