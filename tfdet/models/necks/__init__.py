"""Necks, built by name from NECKS (importing this package registers them)."""

from tfdet.models.necks.fpn import FPN

__all__ = ["FPN"]
