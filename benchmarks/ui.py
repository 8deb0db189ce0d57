"""Studio speed (issue #19): ``p2p ui`` with its default settings, driven by headless Chromium.

Per repeat (a new server and an empty stage cache each time):

* ``startup_s``: from starting ``p2p ui --no-browser`` to its printed URL;
* ``page_load_s``: from asking the browser for the page to the upload field being there;
* ``visible_s``: from dropping ``examples/alps_photo.jpg`` to step 1's status (cold cache);
* ``slope_edit_s``: from pressing Enter on a new mean slope to step 1's new status;
* with ``--complete`` (first repeat only): ``complete_s`` for step 2 (``p2p run`` at 1024
  cells plus every export), and screenshots of both steps in ``docs/ui-step1.png`` and
  ``docs/ui-step2.png``.

Medians over repeats go to ``benchmarks/results/ui.json``.

    .venv/bin/python benchmarks/ui.py [-n 3] [--complete]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import chromium, open_page, status, toasts, until, upload  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ui.json"
PHOTO = ROOT / "examples" / "alps_photo.jpg"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cache: Path) -> tuple[subprocess.Popen, str, float]:
    port = _free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "p2p"), "ui", "--no-browser", "--port", str(port),
                             "--cache-dir", str(cache)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith("Pixels2Peaks Studio: "):
            return proc, line.split(": ", 1)[1].strip(), time.perf_counter() - t0
    raise RuntimeError("p2p ui exited before printing its URL")


def one_repeat(complete: bool) -> dict[str, float]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with tempfile.TemporaryDirectory(prefix="p2p-ui-bench-") as tmp:
        proc, url, startup = _start(Path(tmp) / "cache")
        driver = chromium(size="1400,2300")
        try:
            out = {"startup_s": startup, "page_load_s": open_page(driver, url)}
            t0 = time.perf_counter()
            upload(driver, PHOTO)
            until("step 1", lambda: "Camera and visible terrain in" in status(driver) or toasts(driver), 300)
            out["visible_s"] = time.perf_counter() - t0
            if complete:
                driver.save_screenshot(str(ROOT / "docs" / "ui-step1.png"))
            field = driver.find_element(By.CSS_SELECTOR, "#p2p-mean_slope_deg input")
            field.clear()
            t0 = time.perf_counter()
            field.send_keys("30", Keys.ENTER)
            until("the slope edit", lambda: "ran projection" in status(driver) or toasts(driver), 300)
            out["slope_edit_s"] = time.perf_counter() - t0
            if complete:
                t0 = time.perf_counter()
                driver.find_element(By.ID, "p2p-complete").click()
                until("step 2", lambda: "Complete heightmap" in status(driver) or toasts(driver), 1200)
                out["complete_s"] = time.perf_counter() - t0
                until("the viewer", lambda: driver.find_elements(By.CSS_SELECTOR, "#p2p-viewer canvas"))
                time.sleep(3.0)
                driver.save_screenshot(str(ROOT / "docs" / "ui-step2.png"))
            if toasts(driver):
                raise RuntimeError(f"the page says: {toasts(driver)}")
            return out
        finally:
            driver.quit()
            proc.terminate()
            proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3, help="repeats (a new server and cache each)")
    ap.add_argument("--complete", action="store_true", help="also time step 2 once and take screenshots")
    args = ap.parse_args()
    runs = [one_repeat(args.complete and i == 0) for i in range(args.n)]
    for i, r in enumerate(runs):
        print(i, {k: round(v, 2) for k, v in r.items()})
    keys = sorted({k for r in runs for k in r})
    med = {k: round(statistics.median(r[k] for r in runs if k in r), 3) for k in keys}
    result = {
        "benchmark": "ui",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "photo": str(PHOTO.relative_to(ROOT)),
        "settings": "p2p ui defaults (1024 cells, 20 steps, builtin backends, shipped prior)",
        "repeats": args.n,
        "median": med,
        "runs": runs,
        "targets": {"page_load_s": 3.0, "visible_s": 15.0},
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(med, indent=2))


if __name__ == "__main__":
    main()
