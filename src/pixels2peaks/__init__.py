"""Pixels2Peaks: one landscape photograph to a complete metric terrain heightmap.

Implements *Pixels2Peaks: Converting Terrain Images to Heightmaps* (Jain, Gain, Cordonnier,
ACM TOG 2026).
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# Numba's default OpenMP threading layer shares libgomp with PyTorch: one parallel camera
# kernel reset torch's intra-op thread count and made the U-Net up to 25x slower in the same
# process (measured; tests/test_threads.py). The work-queue layer leaves torch alone. A layer
# the user chose with NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in _os.environ:
    _os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    if "numba" in _sys.modules:  # imported before us: its config is already read
        _sys.modules["numba"].config.THREADING_LAYER = "workqueue"
