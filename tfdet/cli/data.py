"""``tfdet convert | generate | inspect``: getting data in and looking at it."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

from tfdet.registry import IMPORTERS


def _add_convert_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="output directory of the TFRecord shards")
    parser.add_argument("--prefix", required=True,
                        help="shard file prefix: train, eval or unlabelled, the files the pipeline reads "
                             "(span-N/train-*, eval-*, unlabelled-*); another prefix needs the pipeline's --*-pattern")
    parser.add_argument("--num-shards", type=int, default=16, help="shards at most (as many as the records fill)")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="stop at the first bad record (raise) or leave bad records out and report them (skip)")
    parser.add_argument("--num-workers", type=int, default=None, help="processes checking images (default: all cores)")


def add_commands(commands) -> None:
    """Adds convert, generate and inspect to the ``tfdet`` subcommands."""
    convert = commands.add_parser(
        "convert", help="convert annotations to tfdet TFRecords", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  tfdet convert coco --annotations instances_train2017.json --images train2017/ --output "
               "data/coco/span-1 --prefix train\n"
               "  tfdet convert voc --root VOCdevkit/VOC2012 --split train --classes voc --output data/voc/span-1 "
               "--prefix train\n"
               "  tfdet convert records --input records.jsonl --num-classes 20 --output data/mine/span-1 "
               "--prefix train\n"
               "  tfdet convert images --images new_photos/ --output data/mine/span-2 --prefix unlabelled")
    sources = convert.add_subparsers(dest="source", required=True)
    for name in IMPORTERS.names:  # one subcommand per importer (tfdet/dataio/importers/, one file each)
        importer = IMPORTERS.get(name)
        source = sources.add_parser(name, help=importer.help)
        importer.add_arguments(source)
        _add_convert_options(source)

    generate = commands.add_parser("generate", help="write the embedded default dataset")
    generate.add_argument("--root", default="data")
    generate.add_argument("--name", default="default")
    generate.add_argument("--spans", default="1", help="comma-separated span numbers")
    generate.add_argument("--num-train", type=int, default=960)
    generate.add_argument("--num-eval", type=int, default=120)
    generate.add_argument("--num-unlabelled", type=int, default=None,
                          help="images without boxes, scored by the pipeline's batch inference (default: as many as "
                               "the pipeline's default data has, synthetic.DEFAULT_NUM_UNLABELLED)")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--force", action="store_true")

    inspect = commands.add_parser("inspect", help="stream TFRecords through the seed's pipeline and summarise")
    inspect.add_argument("pattern", help="glob of TFRecord files")
    inspect.add_argument("--size", type=int, default=512, help="RandomResized output size")
    inspect.add_argument("--batch-size", type=int, default=4)
    inspect.add_argument("--label-map", default=None, help="label_map.json (default: beside the files)")

    convert.set_defaults(handler=_convert)
    generate.set_defaults(handler=_generate)
    inspect.set_defaults(handler=_inspect)


def _print_report(report, output: str, prefix: str) -> None:
    print(f"records seen {report.records_seen}: written {report.written}, rejected {report.rejected}"
          f" ({report.boxes_written} boxes in {len(report.shards)} shards, {report.seconds:.1f} s)")
    for reason, count in sorted(report.rejected_by_reason.items()):
        print(f"  rejected {count:5d}  {reason}")
    for rejection in report.rejections[:10]:
        print(f"  - {rejection.message}")
    if len(report.rejections) > 10:
        print(f"  ... {len(report.rejections) - 10} more")
    for kind, found in (("image path", report.duplicate_images), ("source_id", report.duplicate_source_ids)):
        if found:
            first, indices = next(iter(found.items()))
            print(f"  warning: {len(found)} {kind}(s) occur more than once (e.g. {first!r} in records "
                  f"{', '.join(map(str, indices))}); all are listed in the report")
    if report.replaced:
        print(f"  replaced {len(report.replaced)} earlier file(s) of prefix {prefix!r}")
    print(f"report: {os.path.join(output, prefix + '-report.json')}")


def _convert(args: argparse.Namespace) -> int:
    from tfdet.dataio.converter import convert_dataset_to_tfrecord

    imported = IMPORTERS.get(args.source).load(args)
    print(imported.summary)
    records, label_map = imported.records, imported.label_map
    num_classes = len(label_map) if label_map is not None else imported.num_classes
    report = convert_dataset_to_tfrecord(
        records, num_shards=args.num_shards, output_dir=args.output, prefix=args.prefix,
        num_classes=num_classes, label_map=label_map, on_error=args.on_error, num_workers=args.num_workers,
    )
    _print_report(report, args.output, args.prefix)
    if report.written == 0:
        reason = (f"all {report.records_seen} records were rejected" if report.records_seen
                  else "the input has no records")
        print(f"tfdet convert: error: nothing was written ({reason}); no shard was made in {args.output}. "
              f"Fix the input using the report above and convert again", file=sys.stderr)
        return 1
    return 0


def _generate(args: argparse.Namespace) -> int:
    from tfdet.dataio.synthetic import DEFAULT_NUM_UNLABELLED, generate_default_dataset

    started = time.perf_counter()
    spans = [int(s) for s in args.spans.split(",")]
    unlabelled = DEFAULT_NUM_UNLABELLED if args.num_unlabelled is None else args.num_unlabelled
    written = generate_default_dataset(args.root, args.name, spans, args.num_train, args.num_eval,
                                       num_unlabelled=unlabelled, seed=args.seed, force=args.force)
    for span, path in written.items():
        print(f"span {span}: {path}")
    print(f"default dataset ready in {time.perf_counter() - started:.1f} s")
    return 0


def inspect_records(pattern: str, size: int = 512, batch_size: int = 4,
                    label_map_file: Optional[str] = None) -> dict:
    """Streams ``pattern`` through the seed's Step 02 pipeline and summarises it.

    Returns a dict with examples, boxes, boxes per class, empty images,
    batch shapes and the throughput in images per second.
    """
    import numpy as np
    import tensorflow as tf

    from tfdet.dataio.label_map import label_map_beside, read_label_map
    from tfdet.dataio.pipeline import pipeline
    from tfdet.dataio.steps.source import InputReadRecordFiles
    from tfdet.dataio.tfrecord_files import find_damaged_file

    source = InputReadRecordFiles(pattern_file=pattern)
    steps = [
        source,
        dict(name="RandomResized", height=size, width=size, scale=(0.8, 1.0), ratio=(0.75, 1.3333333333333333)),
        dict(name="Normalize", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), p=1.0),
    ]
    keep = ("image", "bboxes", "labels", "mask")
    dataset = pipeline(steps).map(lambda e: {k: e[k] for k in keep}).padded_batch(batch_size)
    names = read_label_map(label_map_file) if label_map_file else (label_map_beside(pattern) or {})
    examples = boxes = empty = 0
    per_class: dict = {}
    first_shapes = None
    started = time.perf_counter()
    try:
        for batch in dataset:
            mask = batch["mask"].numpy()
            labels = batch["labels"].numpy()[mask]
            examples += mask.shape[0]
            boxes += int(mask.sum())
            empty += int((mask.sum(axis=1) == 0).sum())
            for label, count in zip(*np.unique(labels, return_counts=True)):
                per_class[int(label)] = per_class.get(int(label), 0) + int(count)
            if first_shapes is None:
                first_shapes = {k: list(v.shape) for k, v in batch.items()}
                image = batch["image"].numpy()
                first_shapes["image mean/std"] = [round(float(image.mean()), 3), round(float(image.std()), 3)]
    except tf.errors.DataLossError as error:
        files = source.files()
        raise find_damaged_file(files, source.compression(files)) or error from None
    seconds = time.perf_counter() - started
    return {
        "examples": examples, "boxes": boxes, "empty_images": empty,
        "boxes_per_class": {names.get(k, str(k)): v for k, v in sorted(per_class.items())},
        "first_batch": first_shapes, "seconds": round(seconds, 2),
        "images_per_second": round(examples / seconds, 1) if seconds else None,
    }


def _inspect(args: argparse.Namespace) -> int:
    summary = inspect_records(args.pattern, args.size, args.batch_size, args.label_map)
    print(f"{args.pattern}: {summary['examples']} images, {summary['boxes']} boxes, "
          f"{summary['empty_images']} images without boxes")
    print("boxes per class: " + ", ".join(f"{k} {v}" for k, v in summary["boxes_per_class"].items()))
    print("first batch: " + ", ".join(f"{k} {v}" for k, v in (summary["first_batch"] or {}).items()))
    print(f"streamed in {summary['seconds']} s ({summary['images_per_second']} images/s, "
          f"{args.size}x{args.size}, incl. start-up)")
    return 0


