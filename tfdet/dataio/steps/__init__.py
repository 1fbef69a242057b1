"""The registered pipeline steps (importing this package registers them)."""

from tfdet.dataio.steps.base import DatasetStep, MapStep, SourceStep, Step
from tfdet.dataio.steps.geometric import RandomFlip, RandomResized, Resize, crop_and_resize
from tfdet.dataio.steps.photometric import ColorJitter, Normalize
from tfdet.dataio.steps.source import FilterEmpty, InputReadRecordFiles, Repeat, Shuffle

__all__ = [
    "Step", "SourceStep", "MapStep", "DatasetStep",
    "InputReadRecordFiles", "Shuffle", "Repeat", "FilterEmpty",
    "RandomResized", "Resize", "RandomFlip", "crop_and_resize",
    "ColorJitter", "Normalize",
]
