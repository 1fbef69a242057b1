"""The seed's import path (sic): ``from tfdet.dataio.tfrecord_utilts import convert_dataset_to_tfrecord``.

The implementation lives in :mod:`tfdet.dataio.converter`.
"""

from tfdet.dataio.annotations import RecordError
from tfdet.dataio.converter import ConversionReport, convert_dataset_to_tfrecord
from tfdet.dataio.workers import WorkerError

__all__ = ["convert_dataset_to_tfrecord", "ConversionReport", "RecordError", "WorkerError"]
