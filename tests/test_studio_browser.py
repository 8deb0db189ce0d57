"""The studio in a real browser (issue #19): headless Chromium from Debian (``chromium``,
``chromium-driver``), driven by selenium, against a test-sized studio.

Opens the page, uploads the bundled photo, runs both steps, changes the slope and sees the
visible step re-run, sees the result image and the 3D viewer's canvas, downloads
``heightmap.tif`` and reads it with rasterio; checks that the page fetches nothing from another
host, and that an upload over the limit and a non-image give a message in the page while the
server stays up. Screenshots: ``out/screenshots/ui-step1.png`` and ``ui-step2.png`` (or
``$P2P_SCREENSHOTS``).

Without Chromium the tests are skipped, except where ``P2P_REQUIRE_BROWSER=1`` (CI): then they
fail.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from browser_support import CHROMIUM, DRIVER, chromium, open_page, status, toasts, until, upload
from studio_support import PHOTO, REPO, start_server, stop_server

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCREENSHOTS = Path(os.environ.get("P2P_SCREENSHOTS", REPO / "out" / "screenshots"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app, url = start_server(tmp_path_factory.mktemp("browser"), max_upload_mb=1)
    yield url
    stop_server(app)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    if not (CHROMIUM and DRIVER):
        if os.environ.get("P2P_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium / chromedriver not found (apt-get install chromium chromium-driver)")
        pytest.skip("chromium / chromedriver not installed")
    driver = chromium(downloads)
    yield driver
    driver.quit()


def test_both_steps_in_the_browser(server, browser, downloads):
    import rasterio
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    open_page(d, server)
    upload(d, PHOTO)
    until("the visible step", lambda: "ran segmentation" in status(d))
    slope = d.find_element(By.ID, "p2p-mean_slope_deg")
    assert "source: builtin" in slope.text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(SCREENSHOTS / "ui-step1.png"))

    field = slope.find_element(By.CSS_SELECTOR, "input")
    field.clear()
    field.send_keys("32", Keys.ENTER)
    until("the visible step to re-run", lambda: "ran projection, zmax" in status(d))
    until("the slope's source", lambda: "source: you" in d.find_element(By.ID, "p2p-mean_slope_deg").text)
    assert field.get_attribute("value") == "32"

    d.find_element(By.ID, "p2p-complete").click()
    until("the complete step", lambda: "Complete heightmap 64 x 64" in status(d) or toasts(d))
    assert "Complete heightmap" in status(d), toasts(d)
    img = until("the result image", lambda: d.find_elements(By.CSS_SELECTOR, "#p2p-preview img"))[0]
    until("the result image to load", lambda: d.execute_script("return arguments[0].naturalWidth", img) > 0)
    until("the 3D viewer's canvas", lambda: d.find_elements(By.CSS_SELECTOR, "#p2p-viewer canvas"))
    time.sleep(1.0)  # let the viewer draw
    d.save_screenshot(str(SCREENSHOTS / "ui-step2.png"))

    link = d.find_element(By.CSS_SELECTOR, "#p2p-downloads a[download='heightmap.tif']")
    d.execute_script("arguments[0].scrollIntoView()", link)
    link.click()
    tif = downloads / "heightmap.tif"
    until("the download", lambda: tif.is_file() and not list(downloads.glob("*.crdownload")))
    with rasterio.open(tif) as ds:
        z = ds.read(1)
        dx = ds.transform.a
    assert z.shape == (64, 64) and np.isfinite(z).all() and np.ptp(z) > 0
    shown_dx = float(re.search(r"cells of ([0-9.]+) m", status(d)).group(1))  # the page's dx
    assert dx == pytest.approx(shown_dx, abs=0.01)
    assert "MDD (m)" in d.find_element(By.ID, "p2p-metrics").text

    hosts = d.execute_script("return performance.getEntriesByType('resource').map(e => new URL(e.name).host)")
    assert set(hosts) <= {server.split("/")[2]}, "the page fetched from another host"


def test_bad_uploads_give_a_message_and_the_server_stays_up(server, browser, tmp_path):
    d = browser
    open_page(d, server)
    text = tmp_path / "holiday.jpg"
    text.write_text("these are my notes, not a photo")
    upload(d, text)
    until("the non-image message", lambda: "'holiday.jpg' is not an image" in toasts(d))

    open_page(d, server)
    big = tmp_path / "huge.jpg"
    big.write_bytes(os.urandom(int(1.5e6)))
    upload(d, big)
    until("the upload-limit message", lambda: "1 MB" in toasts(d) or "1mb" in toasts(d).lower()
           or "maximum" in toasts(d).lower() or "exceed" in toasts(d).lower())

    open_page(d, server)  # still serving: a good photo goes through
    upload(d, PHOTO)
    until("the visible step", lambda: "Camera and visible terrain in" in status(d))
