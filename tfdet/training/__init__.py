"""Training tools: optimizers and schedules from a zoo recipe."""

from tfdet.training.optimizers import build_optimizer, build_schedule

__all__ = ["build_optimizer", "build_schedule"]
