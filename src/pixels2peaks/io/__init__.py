"""DEM input/output: :func:`read_dem` -> :class:`Dem` (float32 metres, NaN nodata, square cells),
and atomic writers (GeoTIFF, ESRI ASCII, ENVI, 16-bit PNG + JSON sidecar, .npy, .npz)."""

from pixels2peaks.io.dem import Dem, metres_per_degree, read_dem
from pixels2peaks.io.write import (
    atomic_path,
    png16_encode,
    write_asc,
    write_dem,
    write_envi,
    write_geotiff,
    write_npy,
    write_npz,
    write_png16,
)

__all__ = [
    "atomic_path",
    "Dem",
    "read_dem",
    "metres_per_degree",
    "write_dem",
    "write_geotiff",
    "write_asc",
    "write_envi",
    "write_png16",
    "write_npy",
    "write_npz",
    "png16_encode",
]
