"""Models: backbones, necks, heads, losses and the detector architectures.

Importing :mod:`tfdet.models.architectures` registers every built-in part.
"""
