"""Detector architectures."""

from tfdet.models.architectures.one_stage import ConfigOneStage, OneStageModel

__all__ = ["ConfigOneStage", "OneStageModel"]
