"""Stability of the camera and the grid (issue [view-true], "Stability"): re-save each photo as
JPEG at quality 92 and compare dx and the pitch that the visible stage finds (the settings of
`p2p run`: square extent, 512-cell perception grid, builtin backends, no EXIF FOV, so both
versions estimate everything).

Photos: the bundled example and every shared real photo (``../shared/data/photos``). The issue
asks for <= 2 % dx and <= 0.5 deg pitch where the re-save changes pixels by < 0.2 grey levels on
average. Already-compressed photos change by more than that, so the mean change is reported.

Each row holds the default's figures, and under ``"s14"`` the same figures with session 14's
pitch search (one grid spanning every point: ``search_extent_trim=0``,
``search_grid_scales=(1,)``), measured in the same run.

    .venv/bin/python benchmarks/stability.py      # writes benchmarks/results/stability.json
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "stability.json"
SHARED = ROOT.parent / "shared" / "data" / "photos"


def photos() -> list[Path]:
    out = [ROOT / "examples" / "alps_photo.jpg"]
    out += sorted((SHARED / "geopose3k").glob("*_photo.jpg"))
    out += sorted(p for p in (SHARED / "skyseg").glob("*.png") if not p.stem.endswith("_mask"))
    return [p for p in out if p.is_file()]


def main() -> None:
    from PIL import Image

    from pixels2peaks.perception.pipeline import estimate_visible
    from pixels2peaks.pipeline.run import RunConfig

    opts = RunConfig().visible_options()
    s14 = dataclasses.replace(opts, reconstruct=dataclasses.replace(opts.reconstruct, search_extent_trim=0.0,
                                                                    search_grid_scales=(1.0,)))

    def compare(rgb: np.ndarray, jpg: np.ndarray, o) -> dict:
        a, b = estimate_visible(rgb, o), estimate_visible(jpg, o)
        return {"dx_m": [a.dx_m, b.dx_m], "dx_change_pct": 100.0 * abs(b.dx_m / a.dx_m - 1.0),
                "pitch_deg": [a.camera.pitch_deg, b.camera.pitch_deg],
                "pitch_change_deg": abs(b.camera.pitch_deg - a.camera.pitch_deg),
                "terrain_pixel_change_pct": 100.0 * float((a.terrain_mask != b.terrain_mask).mean())}

    rows = []
    t0 = time.perf_counter()
    for p in photos():
        im = Image.open(p).convert("RGB")
        rgb = np.asarray(im)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=92)
        jpg = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        row = {"photo": p.name, "mean_pixel_change": float(np.abs(rgb.astype(float) - jpg).mean())}
        row |= compare(rgb, jpg, opts) | {"s14": compare(rgb, jpg, s14)}
        rows.append(row)
        print(f"{p.name[:32]:32s} pixels {row['mean_pixel_change']:.2f}  dx {row['dx_change_pct']:5.1f} %  "
              f"pitch {row['pitch_change_deg']:.2f} deg  mask {row['terrain_pixel_change_pct']:.2f} %  | s14 "
              f"dx {row['s14']['dx_change_pct']:5.1f} %  pitch {row['s14']['pitch_change_deg']:.2f} deg", flush=True)
    out = {"benchmark": "stability", "date": time.strftime("%Y-%m-%d"), "rows": rows,
           "median_dx_change_pct": float(np.median([r["dx_change_pct"] for r in rows])),
           "median_pitch_change_deg": float(np.median([r["pitch_change_deg"] for r in rows])),
           "wall_s": round(time.perf_counter() - t0, 1)}
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
