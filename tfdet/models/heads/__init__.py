"""Heads, built by name from HEADS; the registry imports every module of this package on first use,
so a new one is one file with its registration.

Every head follows the dense-head contract of :mod:`tfdet.models.heads.base`.
"""

from tfdet.models.heads.anchor_head import AnchorHead
from tfdet.models.heads.atss_head import ATSSHead
from tfdet.models.heads.base import DenseHead
from tfdet.models.heads.fcos_head import FCOSHead

__all__ = ["AnchorHead", "ATSSHead", "DenseHead", "FCOSHead"]
