"""Steps that open the data and reshape the dataset as a whole."""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from tfdet.dataio import features
from tfdet.dataio.steps.base import DatasetStep, Example, SourceStep
from tfdet.dataio.tfrecord_files import check_record_file, compression_of, is_local, match_files
from tfdet.registry import PIPELINE_STEPS


@PIPELINE_STEPS.register("InputReadRecordFiles")
class InputReadRecordFiles(SourceStep):
    """Reads tfdet TFRecords and decodes them.

    Files are read in parallel (interleaved); records are parsed and images
    decoded inside the pipeline's parallel map.

    Args:
        pattern_file: a glob (or comma-separated globs) of TFRecord files.
        compression_type: ``"auto"`` (GZIP when every file ends in ``.gz``, as
            TFX's ExampleGen writes them), ``""`` or ``"GZIP"``.
        shuffle: shuffle the file order and the records (buffer below).
        shuffle_buffer: records held for shuffling.
        repeat: repeat forever (for ``steps_per_epoch`` training).
        seed: seed of the shuffles, for reproducible orders.
        cycle_length: files read at once; default min(#files, 8).
        num_shards, shard_index: read only part ``shard_index`` of ``num_shards``
            (one part per worker in distributed training): whole files when
            there are at least ``num_shards`` files, otherwise every
            ``num_shards``-th record, taken before shuffling.
        check_files: before reading, walk the record headers of local,
            uncompressed files (one small read per record), so that a
            cut-short file is named instead of failing mid-training with
            ``DataLossError: truncated record``.

    Output keys: ``image`` float32 [H, W, 3] in [0, 1], ``bboxes`` [N, 4]
    y-first normalised, ``labels`` int32 [N], ``mask`` bool [N],
    ``image_id`` string, ``original_size`` int32 [2].
    """

    def __init__(
        self,
        pattern_file: str,
        compression_type: str = "auto",
        shuffle: bool = False,
        shuffle_buffer: int = 1024,
        repeat: bool = False,
        seed: Optional[int] = None,
        cycle_length: Optional[int] = None,
        num_shards: int = 1,
        shard_index: int = 0,
        check_files: bool = True,
    ) -> None:
        self._remember(pattern_file=pattern_file, compression_type=compression_type, shuffle=shuffle,
                       shuffle_buffer=shuffle_buffer, repeat=repeat, seed=seed, cycle_length=cycle_length,
                       num_shards=num_shards, shard_index=shard_index, check_files=check_files)
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index must be in [0, num_shards={num_shards}), got {shard_index}")
        if compression_type not in ("auto", "", "GZIP", "ZLIB"):
            raise ValueError(f"compression_type must be 'auto', '', 'GZIP' or 'ZLIB', got {compression_type!r}")
        self.pattern_file = pattern_file
        self.compression_type = compression_type
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.repeat = repeat
        self.seed = seed
        self.cycle_length = cycle_length
        self.num_shards = num_shards
        self.shard_index = shard_index
        self.check_files = check_files

    def files(self):
        """The matched files, sorted; raises FileNotFoundError when none match."""
        try:
            return match_files(self.pattern_file)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"InputReadRecordFiles: no files match pattern_file={self.pattern_file!r}; "
                f"convert your data with convert_dataset_to_tfrecord or fix the pattern"
            ) from None

    def compression(self, files) -> str:
        """The compression type the files are read with."""
        return compression_of(files) if self.compression_type == "auto" else self.compression_type

    def dataset(self) -> tf.data.Dataset:
        files = self.files()
        compression = self.compression(files)
        if self.check_files and not compression:
            for path in filter(is_local, files):
                check_record_file(path)
        shard_records = self.num_shards > 1 and len(files) < self.num_shards
        if self.num_shards > 1 and not shard_records:
            files = files[self.shard_index::self.num_shards]
        dataset = tf.data.Dataset.from_tensor_slices(files)
        if self.shuffle and not shard_records:  # record sharding needs the same record order in every shard
            dataset = dataset.shuffle(len(files), seed=self.seed, reshuffle_each_iteration=True)
        dataset = dataset.interleave(
            lambda path: tf.data.TFRecordDataset(path, compression_type=compression),
            cycle_length=self.cycle_length or min(len(files), 8),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=shard_records or not self.shuffle,
        )
        if shard_records:
            dataset = dataset.shard(self.num_shards, self.shard_index)
        if self.shuffle:
            dataset = dataset.shuffle(self.shuffle_buffer, seed=self.seed, reshuffle_each_iteration=True)
        if self.repeat:
            dataset = dataset.repeat()
        return dataset

    def __call__(self, serialized: tf.Tensor) -> Example:
        return features.decode_example(serialized)


@PIPELINE_STEPS.register("Shuffle")
class Shuffle(DatasetStep):
    """Shuffles decoded examples (prefer InputReadRecordFiles' cheaper ``shuffle``).

    Args:
        buffer_size: examples held for shuffling.
        seed: optional seed.
    """

    def __init__(self, buffer_size: int = 256, seed: Optional[int] = None) -> None:
        self._remember(buffer_size=buffer_size, seed=seed)
        self.buffer_size, self.seed = buffer_size, seed

    def apply(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        return dataset.shuffle(self.buffer_size, seed=self.seed)


@PIPELINE_STEPS.register("Repeat")
class Repeat(DatasetStep):
    """Repeats the dataset ``count`` times (None: forever)."""

    def __init__(self, count: Optional[int] = None) -> None:
        self._remember(count=count)
        self.count = count

    def apply(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        return dataset.repeat(self.count)


@PIPELINE_STEPS.register("FilterEmpty")
class FilterEmpty(DatasetStep):
    """Drops examples without boxes (e.g. after a crop lost them all)."""

    def __init__(self) -> None:
        self._remember()

    def apply(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        return dataset.filter(lambda example: tf.size(example["labels"]) > 0)
