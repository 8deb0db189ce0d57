"""Camera kernels (numba, parallel) must not change PyTorch's thread count."""

import subprocess
import sys

SCRIPT = """
import torch
torch.set_num_threads(1)
import numpy as np
from pixels2peaks.camera import Camera, render
z = np.random.default_rng(0).random((64, 64)).astype(np.float32) * 100
cam = Camera(64, 48, 60.0, (32 * 30.0, -100.0, 500.0), 0.0, -10.0)
render(z, 30.0, cam)
import numba
print(torch.get_num_threads(), numba.threading_layer())
"""


def test_render_keeps_torch_thread_count():
    env_free = {k: v for k, v in __import__("os").environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env_free, check=True).stdout.split()
    assert out == ["1", "workqueue"]
