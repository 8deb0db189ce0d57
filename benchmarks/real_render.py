"""Issue [view-true] real-photo acceptance from the outputs of ``benchmarks/end_to_end.py --keep DIR``:
the final heightmap of each real photo rendered from its own camera (``camera.json``), against

* the hand-made masks of the skyseg photos: terrain IoU (target >= 0.97);
* the GeoPose3K distance maps: render-depth AbsRel after a least-squares scale (target <= 0.25);
* walls: visible cells (``visible_mask.png``) steeper than 60 deg (target <= 2 % on the skyseg
  photos and the bundled example).

    .venv/bin/python benchmarks/end_to_end.py --keep /tmp/e2e && .venv/bin/python benchmarks/real_render.py /tmp/e2e
Writes benchmarks/results/real_render.json.
"""
import json, sys, numpy as np
from pathlib import Path
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parent))
from perception import read_pfm
from view import wall_share
from pixels2peaks.camera import Camera, render
from pixels2peaks.io.dem import read_dem
from pixels2peaks.evaluation.view_metrics import mask_iou, scaled_abs_rel
ROOT = Path(__file__).resolve().parents[1]
S = ROOT.parent / "shared" / "data" / "photos"
cases = {"28488116812_f5a57ca0f6_k": ("mask", S/"skyseg/28488116812_f5a57ca0f6_k_sky_mask.png"),
         "eth_ch1_2011-10-01_17131": ("mask", S/"skyseg/eth_ch1_2011-10-01_171312_01024_sky_mask.png"),
         "taschhorn02": ("mask", S/"skyseg/taschhorn02_sky_mask.png"),
         "alps_town_photo": ("depth", S/"geopose3k/alps_town_distance.pfm"),
         "matterhorn_photo": ("depth", S/"geopose3k/matterhorn_distance.pfm.gz"),
         "alps_photo": ("none", None)}
out = {}
RUNS = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/e2e")
for name, (kind, gt) in cases.items():
    d = RUNS / name
    if not (d / "heightmap.tif").is_file():
        continue
    dem = read_dem(d/"heightmap.tif")
    cam = Camera.from_dict(json.loads((d/"camera.json").read_text()))
    r = render(dem.z.astype(np.float64), dem.dx_m, cam)
    vis = np.asarray(Image.open(d/"visible_mask.png")) == 255
    row = {"walls_pct": 100 * wall_share(dem.z, dem.dx_m, vis)}
    if kind == "mask":
        m = np.asarray(Image.open(gt).convert("L").resize((cam.width, cam.height), Image.NEAREST)) >= 128
        row["iou"] = mask_iou(r.hit, m)
    elif kind == "depth":
        g = read_pfm(gt)
        g = np.asarray(Image.fromarray(g.astype(np.float32)).resize((cam.width, cam.height), Image.NEAREST))
        both = r.hit & (g > 0)
        row["abs_rel"] = scaled_abs_rel(r.depth, g, both)
        row["iou"] = mask_iou(r.hit, g > 0)
    out[name] = row
    print(name, {k: round(v, 4) for k, v in row.items()}, flush=True)
(ROOT / "benchmarks" / "results" / "real_render.json").write_text(json.dumps(out, indent=1) + "\n")
