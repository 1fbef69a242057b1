"""Converting seed records into sharded TFRecords of tf.Examples."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from tqdm.auto import tqdm

from tfdet.dataio.annotations import EncodedRecord, RecordError, encode_record
from tfdet.dataio.label_map import label_map_path, read_label_map, write_label_map
from tfdet.dataio.shard_writer import ShardWriter
from tfdet.dataio.workers import ordered_map
from tfdet.files import write_json

_INLINE_BELOW = 32  # records; a process pool costs more than it saves below this


@dataclass
class Rejection:
    """One record that was not written, and why."""

    index: int
    image_path: Optional[str]
    code: str
    message: str


@dataclass
class ConversionReport:
    """What a conversion did. ``records_seen == written + rejected`` always."""

    records_seen: int = 0
    written: int = 0
    rejected: int = 0
    rejections: List[Rejection] = field(default_factory=list)
    rejected_by_reason: Dict[str, int] = field(default_factory=dict)
    shards: List[str] = field(default_factory=list)
    examples_per_shard: List[int] = field(default_factory=list)
    boxes_written: int = 0
    label_map: Dict[int, str] = field(default_factory=dict)
    replaced: List[str] = field(default_factory=list)
    duplicate_images: Dict[str, List[int]] = field(default_factory=dict)
    duplicate_source_ids: Dict[str, List[int]] = field(default_factory=dict)
    reoriented: List[int] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (label-map keys become strings)."""
        out = asdict(self)
        out["label_map"] = {str(k): v for k, v in sorted(self.label_map.items())}
        return out


class _LabelMap:
    """Checks that every id keeps one name and every name one id, in the order pairs arrive."""

    def __init__(self) -> None:
        self.names: Dict[int, str] = {}
        self.ids: Dict[str, int] = {}
        self.first_seen: Dict[int, str] = {}

    def _conflict(self, label_id: int, name: str) -> Optional[str]:
        known_name, known_id = self.names.get(label_id), self.ids.get(name)
        if known_name is not None and known_name != name:
            return (f"label id {label_id} is named {name!r} here but {known_name!r} in "
                    f"{self.first_seen[label_id]}; one id must have one name")
        if known_id is not None and known_id != label_id:
            return (f"label name {name!r} has id {label_id} here but id {known_id} in "
                    f"{self.first_seen[known_id]}; one name must have one id")
        return None

    def add(self, label_id: int, name: str, origin: str, index: int = -1, image_path: Optional[str] = None) -> None:
        """Records a pair; raises RecordError (naming ``index`` / ``image_path``) if it contradicts a known one."""
        conflict = self._conflict(label_id, name)
        if conflict:
            raise RecordError(index, image_path, "label_conflict", conflict)
        if label_id not in self.names:
            self.names[label_id], self.ids[name], self.first_seen[label_id] = name, label_id, origin

    def check(self, encoded: EncodedRecord) -> None:
        """Adds a record's pairs, all or none: a conflicting record leaves the map unchanged."""
        for label_id, name in encoded.labels:
            conflict = self._conflict(label_id, name)
            if conflict:
                raise RecordError(encoded.index, encoded.image_path, "label_conflict", conflict)
        for label_id, name in encoded.labels:
            self.add(label_id, name, f"record {encoded.index} ({encoded.image_path})")


def _encode_or_error(item: Tuple[int, Any], num_classes: Optional[int], prefix: str
                     ) -> Union[EncodedRecord, RecordError]:
    index, record = item
    try:
        return encode_record(index, record, num_classes, source_prefix=prefix)
    except RecordError as error:
        return error


def _describe(item: Tuple[int, Any]) -> str:
    index, record = item
    path = record.get("image_path") if isinstance(record, Mapping) else None
    return f"record {index}" + (f" ({path})" if isinstance(path, str) else "")


def convert_dataset_to_tfrecord(
    dataset: Iterable[Mapping[str, Any]],
    num_shards: int = 16,
    output_dir: str = "directory",
    *,
    prefix: str = "data",
    num_classes: Optional[int] = None,
    label_map: Optional[Mapping[int, str]] = None,
    on_error: str = "raise",
    num_workers: Optional[int] = None,
    show_progress: bool = True,
    worker_timeout: float = 600.0,
) -> ConversionReport:
    """Validates seed records and writes them as sharded TFRecords.

    Record ``i`` goes to shard ``i % num_shards`` of
    ``{output_dir}/{prefix}-XXXXX-of-YYYYY.tfrecord``, so the output depends
    only on the input order (and not on the number of workers); a shard
    that would stay empty (fewer records than shards) is not made, and the
    others are numbered 0..K-1 of K.

    Guarantees (:class:`~tfdet.dataio.shard_writer.ShardWriter`): files are
    written under temporary names and renamed at the end, so a failed
    conversion leaves no shard behind; temporary files left by an earlier,
    killed conversion of this prefix are removed at the start; older shards
    of exactly this prefix are replaced (and listed in the report's
    ``replaced``), while files of any other prefix (``train-hard`` beside
    ``train``) are never touched. Bad records, a worker that dies, raises
    something unexpected or hangs for longer than ``worker_timeout`` end
    the conversion with an error: it never hangs.

    Besides the shards it writes ``{prefix}-report.json`` (the report below)
    and ``label_map.json`` (id -> name). An existing ``label_map.json`` in
    ``output_dir`` is honoured: converting the eval split into the train
    split's directory checks its labels against the train split's.

    Args:
        dataset: records ``{'image_path': str, 'bboxes': [[y_min, x_min,
            y_max, x_max], ...] in pixels, 'labels': [{'id': int, 'name':
            str}, ...]}``; optional ``'source_id'``. Empty boxes are legal.
        num_shards: number of output files at most.
        output_dir: created if missing.
        prefix: shard file prefix, e.g. ``"train"`` or ``"eval"``.
        num_classes: if given, label ids must be below it.
        label_map: known id -> name pairs the records must agree with.
        on_error: ``"raise"`` stops at the first bad record with a
            :class:`RecordError`; ``"skip"`` leaves it out and reports it.
        num_workers: processes that read and check images; default: all
            cores (one process below 32 records).
        show_progress: show a tqdm progress bar.
        worker_timeout: seconds a worker may spend on a few records before
            the conversion is stopped.

    Returns:
        The :class:`ConversionReport` (also written as JSON).

    Raises:
        RecordError: with ``on_error="raise"``, naming the first bad record.
        WorkerError: a worker died, hung or failed unexpectedly (names the record).
        ValueError: for invalid arguments.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    shards = ShardWriter(output_dir, prefix, num_shards)  # checks num_shards and prefix
    started = time.perf_counter()
    os.makedirs(output_dir, exist_ok=True)
    existing = label_map_path(output_dir)
    labels = _LabelMap()
    for label_id, name in read_label_map(existing).items():
        labels.add(label_id, name, f"{existing}, the ids this folder's other splits use")
    for label_id, name in (label_map or {}).items():
        labels.add(int(label_id), name, "the label_map argument", image_path="the label_map argument")

    total = len(dataset) if hasattr(dataset, "__len__") else None
    if num_workers is None:
        num_workers = os.cpu_count() or 1
    if total is not None and total < _INLINE_BELOW:
        num_workers = 1
    worker = partial(_encode_or_error, num_classes=num_classes, prefix=f"{prefix}-")

    report = ConversionReport()
    images: Dict[str, List[int]] = {}
    source_ids: Dict[str, List[int]] = {}
    stream = ordered_map(worker, enumerate(dataset), num_workers=num_workers, timeout=worker_timeout,
                         describe=_describe)
    try:
        with shards:
            for result in tqdm(stream, total=total, desc=f"convert {prefix}", unit="img",
                               disable=not show_progress):
                report.records_seen += 1
                try:
                    if isinstance(result, RecordError):
                        raise result
                    labels.check(result)
                except RecordError as error:
                    if on_error == "raise":
                        raise
                    report.rejected += 1
                    report.rejections.append(Rejection(error.index, error.image_path, error.code, str(error)))
                    report.rejected_by_reason[error.code] = report.rejected_by_reason.get(error.code, 0) + 1
                    continue
                if result.reoriented:
                    report.reoriented.append(result.index)
                images.setdefault(result.image_path, []).append(result.index)
                source_ids.setdefault(result.source_id, []).append(result.index)
                shards.write(result.index, result.serialized)
                report.written += 1
                report.boxes_written += len(result.labels)
    finally:
        stream.close()
    report.shards, report.examples_per_shard, report.replaced = shards.shards, shards.examples_per_shard, \
        shards.replaced
    report.duplicate_images = {k: v for k, v in images.items() if len(v) > 1}
    report.duplicate_source_ids = {k: v for k, v in source_ids.items() if len(v) > 1}
    report.label_map = dict(sorted(labels.names.items()))
    report.seconds = round(time.perf_counter() - started, 3)
    write_label_map(output_dir, report.label_map)
    write_json(os.path.join(output_dir, f"{prefix}-report.json"), report.to_dict())
    return report
