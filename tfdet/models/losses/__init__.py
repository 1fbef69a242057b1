"""Losses, built by name from LOSSES; the registry imports every module of this package on first use,
so a new one is one file with its registration.
"""

from tfdet.models.losses.cross_entropy import CrossEntropyLoss
from tfdet.models.losses.focal import FocalLoss
from tfdet.models.losses.iou import GIoULoss, IoULoss
from tfdet.models.losses.regression import L1Loss, SmoothL1Loss

__all__ = ["CrossEntropyLoss", "FocalLoss", "SmoothL1Loss", "L1Loss", "IoULoss", "GIoULoss"]
