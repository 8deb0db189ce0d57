"""evaluation: metrics of reconstructed heightmaps."""

from pixels2peaks.evaluation.view_metrics import (
    mask_iou,
    occluded_view_error,
    terrain_mask_iou,
    ove,
    view_errors,
    visible_view_error,
    vve,
)

__all__ = [
    "visible_view_error",
    "occluded_view_error",
    "mask_iou",
    "terrain_mask_iou",
    "view_errors",
    "vve",
    "ove",
]
