"""Shared constants for the diffusion tests: the DDPM schedule and a tiny U-Net config."""

from pixels2peaks.diffusion.schedule import make_alphas_cumprod

#: cosine-schedule cumulative alphas, T = 1000 (as the shipped prior)
ABAR = make_alphas_cumprod(1000)
#: a tiny randomly initialised prior: fast on CPU, never the shipped weights
TINY = dict(block_out_channels=(32, 32), layers_per_block=1, attention_levels=(1,), sample_size=32)
