"""Classifier two-sample test: ~0.5 on two halves of one set, ~1 on noise against terrain."""

import numpy as np
import pytest

from pixels2peaks.errors import InputError
from pixels2peaks.evaluation.two_sample import C2STConfig, two_sample_accuracy
from pixels2peaks.terrain.noise import fbm

CFG = C2STConfig(folds=4)


def _set(n, beta, seed, amp=100.0):
    rng = np.random.default_rng(seed)
    return np.stack([amp * fbm((64, 64), beta, rng) for _ in range(n)])


def test_two_halves_of_one_set_cannot_be_told_apart():
    tiles = _set(96, 3.0, 0)
    acc = two_sample_accuracy(tiles[:48], tiles[48:], 30.0, CFG)
    assert 0.3 <= acc <= 0.7, acc


def test_noise_against_terrain_is_told_apart():
    terrain = _set(48, 3.0, 1)
    rng = np.random.default_rng(2)
    noise = np.stack([t.std() * fbm((64, 64), 1.0, rng) for t in terrain])  # same height std, rougher
    acc = two_sample_accuracy(terrain, noise, 30.0, CFG)
    assert acc >= 0.9, acc


def test_two_sample_bad_input():
    with pytest.raises(InputError):
        two_sample_accuracy(_set(2, 3.0, 0), _set(2, 3.0, 1), 30.0, CFG)
