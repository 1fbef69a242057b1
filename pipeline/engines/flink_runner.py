"""Beam's FlinkRunner, with every TFRecord read shared out over the cluster's task slots.

Beam 2.59 turns ``beam.io.ReadFromTFRecord`` (what ExampleGen, StatisticsGen, Transform, the Evaluator, BulkInferrer
and the project's own Beam steps read with) into one splittable DoFn over the whole file pattern. Flink's batch
runner splits its work but never redistributes the splits, so every file of a read -- and everything fused after it
up to the first shuffle: parsing, statistics, analysis, inference -- runs in one subtask whatever the parallelism
(apache/beam#21222; Beam's own fix, apache/beam#37965, is in releases TFX 1.16 cannot use). This runner replaces each
such read, before the job is translated, with Beam's ``ReadAllFromTFRecord`` over the same pattern, which matches the
files, cuts them into ranges and reshuffles the ranges (a Flink rebalance) before reading them: the same records,
read by every subtask. ``pipeline/engines/beam.py`` names it as ``--runner`` for ``--beam flink``.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.tfrecordio import ReadAllFromTFRecord, ReadFromTFRecord
from apache_beam.pipeline import PTransformOverride
from apache_beam.runners.portability import flink_runner


class ReadTFRecordsSpread(beam.PTransform):
    """The records of a ``ReadFromTFRecord``'s files, read as ranges reshuffled over the workers."""

    def __init__(self, read: ReadFromTFRecord) -> None:
        super().__init__()
        source = read._source  # Beam keeps the read's settings on its file source
        self._pattern = source._pattern.get()
        self._coder = source._coder
        self._compression = source._compression_type

    def expand(self, pbegin):
        return (pbegin | "Pattern" >> beam.Create([self._pattern])
                | "ReadAll" >> ReadAllFromTFRecord(coder=self._coder, compression_type=self._compression))


class SpreadTFRecordReads(PTransformOverride):
    """Replaces every ``ReadFromTFRecord`` of a pipeline with :class:`ReadTFRecordsSpread`."""

    def matches(self, applied_ptransform) -> bool:
        return isinstance(applied_ptransform.transform, ReadFromTFRecord)

    def get_replacement_transform_for_applied_ptransform(self, applied_ptransform):
        return ReadTFRecordsSpread(applied_ptransform.transform)


class FlinkRunner(flink_runner.FlinkRunner):
    """Beam's FlinkRunner after :class:`SpreadTFRecordReads`."""

    def run_pipeline(self, pipeline, options):
        pipeline.replace_all([SpreadTFRecordReads()])
        return super().run_pipeline(pipeline, options)
