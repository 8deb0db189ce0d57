"""Visible terrain from the photo's occluding contours: layers, their distances and their faces.

What a mountain photo shows reliably without a big model (issue [view-true]; Gain et al. 2009,
*Terrain Sketching*; Tasse et al. 2014, *First person sketch-based terrain editing*):

1. **Occluding contours** (:func:`occluding_contours`): the skyline (the top of the terrain
   mask) and the internal ridgelines where a nearer ridge, darker and more contrasted, cuts a
   farther, hazier one. On a working copy of the image (``work_width_px`` wide), the haze proxy
   is the dark channel (He et al. 2009); a contour pixel (the first row of the nearer layer) is a
   local maximum down its column of the step ``dark(above) - dark(below)`` over ``step_px`` rows
   (corrected for the dark channel's window) that exceeds ``min_step`` (a hazier
   layer above a clearer one), and only contours at least ``min_length`` of the width long are
   kept (8-connected after a one-row vertical dilation).
2. **Layers** between consecutive contours of a column, each with a **crest** (its top row).
   The crest distance comes from a cue (:class:`ContourGeometry.cue`): the depth network's
   distance just below the crest, or Koschmieder's law on the dark channel (distance
   ``-ln t / beta``, ``t = 1 - omega dark / A``), smoothed along the contour.
3. **Faces** (:func:`face_depth`): below its crest, each layer is a plane that falls towards the
   camera at the slope prior ``s`` until the next contour hides it. In the camera frame (level
   camera, unit rays), a ray at elevation ``tan phi`` meets the plane through the crest
   ``(D0, D0 tan phi0)`` at horizontal distance ``x = D0 (s - tan phi0) / (s - tan phi)``: depth
   falls continuously from the crest down -- no wall (a wall is a constant depth down a column).
   Occlusion order is enforced top-down: the crest of the layer below is never farther than
   the bottom of the face above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pixels2peaks.camera.model import focal_px
from pixels2peaks.errors import InputError
from pixels2peaks.perception.builtin import dark_channel
from pixels2peaks.perception.protocols import GeometryResult

__all__ = ["ContourOptions", "working_image", "occluding_contours", "ridgelines", "face_depth", "ContourGeometry"]


@dataclass(frozen=True)
class ContourOptions:
    """Parameters of the contour geometry (pixels are working-image pixels)."""

    work_width_px: int = 400
    dark_radius_px: int = 2
    step_px: int = 4
    min_step: float = 0.02
    min_length: float = 0.08
    min_layer_px: int = 4
    smooth_cols: float = 0.04
    haze_omega: float = 0.95
    face_slope_deg: float = 25.0
    min_face_slope_deg: float = 8.0
    layer_gap: float = 1.05


def _resize(a: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    from scipy.ndimage import zoom

    f = (shape[0] / a.shape[0], shape[1] / a.shape[1]) + (1.0,) * (a.ndim - 2)
    z = zoom(a, f, order=order, mode="nearest", grid_mode=True)
    return z[: shape[0], : shape[1]]


def occluding_contours(rgb: np.ndarray, terrain: np.ndarray, opts: ContourOptions = ContourOptions()) -> np.ndarray:
    """Bool ``(h, w)`` internal occluding contours on the working grid of ``rgb`` (float in
    [0, 1], already at working size) inside ``terrain``. The skyline is not included."""
    from scipy.ndimage import binary_dilation, label, uniform_filter1d

    h, w = terrain.shape
    dark = dark_channel(rgb, opts.dark_radius_px)
    dark = uniform_filter1d(dark, size=3, axis=1, mode="nearest")
    k = opts.step_px
    above = np.full((h, w), np.nan)
    below = np.full((h, w), np.nan)
    cs = np.cumsum(np.vstack([np.zeros((1, w)), dark]), axis=0)
    r = np.arange(k, h - k)
    above[r] = (cs[r] - cs[r - k]) / k
    below[r] = (cs[r + k] - cs[r]) / k
    # the dark channel's minimum filter moves a dark-below edge up by its radius: shift it back
    rad = opts.dark_radius_px
    step = np.full((h, w), np.nan)
    step[rad:] = (above - below)[: h - rad]
    # both sides of the step must be terrain
    inside = terrain.copy()
    inside[:k] = False
    inside[h - k:] = False
    t_above = np.zeros_like(terrain)
    t_above[k:] = terrain[:-k]
    inside &= t_above
    step = np.where(inside & np.isfinite(step), step, 0.0)
    peak = (step >= opts.min_step)
    peak[1:-1] &= (step[1:-1] >= step[:-2]) & (step[1:-1] >= step[2:])
    lab, n = label(binary_dilation(peak, np.ones((3, 1), bool)), np.ones((3, 3), bool))
    if n == 0:
        return np.zeros((h, w), bool)
    rr, cc = np.nonzero(lab)
    # horizontal extent of each component
    lo = np.full(n + 1, w)
    hi = np.full(n + 1, -1)
    np.minimum.at(lo, lab[rr, cc], cc)
    np.maximum.at(hi, lab[rr, cc], cc)
    cols = hi - lo + 1
    keep = cols >= opts.min_length * w
    keep[0] = False
    return keep[lab] & peak


def working_image(rgb8: np.ndarray, terrain: np.ndarray, opts: ContourOptions = ContourOptions()
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The photo (float RGB in [0, 1]) and its terrain mask on the working grid: at most
    ``opts.work_width_px`` pixels across, the aspect kept."""
    H, W = rgb8.shape[:2]
    w = min(W, opts.work_width_px)
    h = max(8, round(H * w / W))
    rgbw = _resize(rgb8.astype(np.float64) / 255.0, (h, w), 1) if (h, w) != (H, W) else rgb8 / 255.0
    terr_w = _resize(np.asarray(terrain, np.float64), (h, w), 1) > 0.5
    return rgbw, terr_w


def ridgelines(rgb8: np.ndarray, terrain: np.ndarray, opts: ContourOptions = ContourOptions()) -> np.ndarray:
    """Bool ``(H, W)``: the photo's internal occluding ridgelines (:func:`occluding_contours`
    on the working grid, mapped back to the photo's pixels; the skyline is not included)."""
    rgbw, terr_w = working_image(np.asarray(rgb8, np.uint8), terrain, opts)
    c = occluding_contours(rgbw, terr_w, opts)
    H, W = np.asarray(terrain).shape
    rows = np.minimum((np.arange(H) + 0.5) * c.shape[0] / H, c.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(W) + 0.5) * c.shape[1] / W, c.shape[1] - 1).astype(int)
    return c[np.ix_(rows, cols)] & np.asarray(terrain, bool)


def face_depth(tan_phi: np.ndarray, crest_row: np.ndarray, crest_dist: np.ndarray, tan_slope: float,
               tan_slope_min: float) -> np.ndarray:
    """Horizontal distance along one column of the layer faces (module doc, step 3).

    ``tan_phi``: ``(h,)`` ray elevation tangents (level camera, decreasing down the column);
    ``crest_row`` ``(k,)`` increasing rows of the layer crests (the first is the skyline);
    ``crest_dist`` ``(k,)`` cue distances of the crests. Returns ``(h,)`` (NaN above the first
    crest). Each crest is pulled in front of the bottom of the face above it (occlusion), and a
    face's slope is raised where the ray would otherwise run along it.
    """
    h = tan_phi.shape[0]
    out = np.full(h, np.nan)
    k = crest_row.size
    prev_bottom = math.inf
    for i in range(k):
        r0 = int(crest_row[i])
        r1 = int(crest_row[i + 1]) if i + 1 < k else h
        d0 = min(float(crest_dist[i]), prev_bottom)
        t0 = tan_phi[r0]
        s = max(tan_slope, t0 + tan_slope_min)
        x = d0 * (s - t0) / (s - tan_phi[r0:r1])
        out[r0:r1] = x
        prev_bottom = float(x[-1]) if r1 < h else prev_bottom
    return out


@dataclass
class ContourGeometry:
    """Geometry backend: pointmap from occluding contours, layer distances and faces (module doc).

    ``cue``: ``"depth_net"`` (the learned network's distance at each crest; the classical haze
    when its weights are missing) or ``"haze"`` (Koschmieder's law on the dark channel).
    ``terrain``: the terrain mask (image-sized bool). ``slope_deg``: the face slope (the mean
    slope prior).
    """

    fov_x_deg: float = 60.0
    cue: str = "depth_net"
    options: ContourOptions = field(default_factory=ContourOptions)
    name: str = "contours"

    def _cue_distance(self, rgb8: np.ndarray, rgbw: np.ndarray, terr_w: np.ndarray) -> np.ndarray:
        """Distance cue on the working grid (arbitrary unit, larger = farther)."""
        if self.cue == "depth_net":
            from pixels2peaks.perception.depth_net import DEFAULT_WEIGHTS, load_depth_net, predict_log_depth, weights_available

            if weights_available(DEFAULT_WEIGHTS):
                net, _ = load_depth_net(DEFAULT_WEIGHTS)
                ld, _ = predict_log_depth(rgb8, net)
                return np.exp(_resize(ld - float(np.median(ld)), terr_w.shape, 1))
        elif self.cue != "haze":
            raise InputError(f"unknown contour-geometry cue {self.cue!r} (depth_net or haze)")
        o = self.options
        dark = dark_channel(rgbw, o.dark_radius_px)
        sky = ~terr_w
        a = float(np.quantile(dark[sky], 0.99)) if sky.sum() > 20 else float(dark.max())
        t = np.clip(1.0 - o.haze_omega * np.minimum(dark / max(a, 1e-3), 1.0), 0.02, 1.0)
        return np.maximum(-np.log(t), 1e-3)

    def estimate(self, image: np.ndarray, terrain: np.ndarray | None = None) -> GeometryResult:
        rgb8 = np.asarray(image)
        if rgb8.ndim != 3 or rgb8.shape[2] != 3:
            raise InputError(f"expected an (H, W, 3) RGB image, got shape {rgb8.shape}")
        if rgb8.dtype != np.uint8:
            rgb8 = (np.clip(rgb8, 0, 1) * 255 + 0.5).astype(np.uint8)
        H, W = rgb8.shape[:2]
        terrain = np.ones((H, W), bool) if terrain is None else np.asarray(terrain, bool)
        o = self.options
        rgbw, terr_w = working_image(rgb8, terrain, o)
        h, w = terr_w.shape
        contours = occluding_contours(rgbw, terr_w, o)
        if not contours.any():
            import warnings

            warnings.warn("contour geometry: no internal ridgeline found (fog, a flat or uniform image?); "
                          "each column is one face below the skyline", stacklevel=2)
        cue = self._cue_distance(rgb8, rgbw, terr_w)
        f = focal_px(w, self.fov_x_deg)
        tan_phi = (h / 2.0 - (np.arange(h) + 0.5)) / f
        ts, tmin = math.tan(math.radians(o.face_slope_deg)), math.tan(math.radians(o.min_face_slope_deg))
        # per column: crest rows (skyline first, then contours at least min_layer_px apart)
        crests: list[np.ndarray] = []
        for c in range(w):
            col = terr_w[:, c]
            if not col.any():
                crests.append(np.zeros(0, np.int64))
                continue
            top = int(np.argmax(col))
            rows = [top] + [r for r in np.flatnonzero(contours[:, c]) if r > top]
            kept = [rows[0]]
            for r in rows[1:]:
                if r - kept[-1] >= o.min_layer_px:
                    kept.append(r)
            crests.append(np.asarray(kept, np.int64))
        # crest distances from the cue a few rows below each crest, smoothed along each layer
        crest_d: list[np.ndarray] = []
        for c in range(w):
            rows = crests[c]
            d = np.array([float(np.median(cue[r + 1 : min(h, r + 1 + o.step_px), c])) if r + 1 < h else float(cue[r, c])
                          for r in rows])
            crest_d.append(d)
        crest_d = self._smooth_along_layers(crests, crest_d, w)
        depth_w = np.full((h, w), np.nan)
        for c in range(w):
            if crests[c].size:
                depth_w[:, c] = face_depth(tan_phi, crests[c], crest_d[c], ts, tmin)
        depth_w[~terr_w] = np.nan
        # to full resolution: horizontal distance -> camera-frame points along each ray
        dfull = _resize(np.nan_to_num(depth_w, nan=0.0), (H, W), 0)
        F = focal_px(W, self.fov_x_deg)
        u = (np.arange(W) + 0.5 - W / 2.0) / F
        v = (np.arange(H) + 0.5 - H / 2.0) / F
        z = dfull  # forward distance of a level camera = horizontal distance along the view axis
        pts = np.stack([z * u[None, :], z * v[:, None], z], axis=-1).astype(np.float32)
        valid = terrain & (dfull > 0)
        return GeometryResult(pts, self.fov_x_deg, valid,
                              source=f"contours: {int(contours.sum())} ridgeline pixels, {self.cue} layer distances, "
                                     f"faces at {o.face_slope_deg:g} deg")

    def _smooth_along_layers(self, crests: list[np.ndarray], crest_d: list[np.ndarray], w: int) -> list[np.ndarray]:
        """Running median of ln(distance) over neighbouring columns' crests at about the same row."""
        win = max(1, int(self.options.smooth_cols * w))
        out = []
        for c in range(w):
            rows, d = crests[c], crest_d[c]
            if rows.size == 0:
                out.append(d)
                continue
            sm = np.empty_like(d)
            for i, r in enumerate(rows):
                vals = []
                for cc in range(max(0, c - win), min(w, c + win + 1)):
                    rr = crests[cc]
                    if rr.size:
                        j = int(np.argmin(np.abs(rr - r)))
                        if abs(int(rr[j]) - int(r)) <= 3 * self.options.step_px:
                            vals.append(crest_d[cc][j])
                sm[i] = float(np.exp(np.median(np.log(np.maximum(vals, 1e-6))))) if vals else d[i]
            out.append(sm)
        return out
