"""Heads, built by name from HEADS (importing this package registers them)."""

from tfdet.models.heads.anchor_head import AnchorHead

__all__ = ["AnchorHead"]
