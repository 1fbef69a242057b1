"""Necks, built by name from NECKS; the registry imports every module of this package on first use,
so a new one is one file with its registration.
"""

from tfdet.models.necks.fpn import FPN

__all__ = ["FPN"]
