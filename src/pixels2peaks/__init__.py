"""Pixels2Peaks: one landscape photograph to a complete metric terrain heightmap.

Implements *Pixels2Peaks: Converting Terrain Images to Heightmaps* (Jain, Gain, Cordonnier,
ACM TOG 2026).
"""

__version__ = "0.1.0"
