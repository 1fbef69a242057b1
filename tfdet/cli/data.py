"""``tfdet convert | generate | inspect``: getting data in and looking at it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional


def _add_convert_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="output directory of the TFRecord shards")
    parser.add_argument("--prefix", default="data", help="shard file prefix, e.g. train or eval")
    parser.add_argument("--num-shards", type=int, default=16)
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
    coco = sources.add_parser("coco", help="a COCO instances JSON")
    coco.add_argument("--annotations", required=True)
    coco.add_argument("--images", required=True, help="directory of the images")
    coco.add_argument("--include-crowd", action="store_true")
    coco.add_argument("--allow-outside-images", action="store_true",
                      help="accept file_names outside --images (trusted annotations only)")
    voc = sources.add_parser("voc", help="a Pascal VOC folder (Annotations/, JPEGImages/)")
    voc.add_argument("--root", required=True)
    voc.add_argument("--split", default=None, help="ImageSets/Main/<split>.txt; default: every XML")
    voc.add_argument("--classes", default=None,
                     help="comma-separated class names in id order; 'voc' for VOC's 20; default: the ids of "
                          "label_map.json in --output (written by an earlier split), else the sorted names found")
    voc.add_argument("--exclude-difficult", action="store_true")
    voc.add_argument("--allow-outside-images", action="store_true",
                     help="accept <filename>s outside JPEGImages/ (trusted annotations only)")
    records = sources.add_parser("records", help="seed records as a JSON list or JSON lines")
    records.add_argument("--input", required=True)
    records.add_argument("--num-classes", type=int, default=None)
    images = sources.add_parser("images", help="a folder of images without annotations (for batch inference)")
    images.add_argument("--images", required=True, help="directory searched recursively for .jpg, .jpeg, .png")
    for sub in (coco, voc, records, images):
        _add_convert_options(sub)

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


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def unlabelled_records(image_dir: str) -> List[dict]:
    """Converter records without boxes for every JPEG / PNG below ``image_dir`` (sorted; the source_id is the
    path relative to ``image_dir``)."""
    if not os.path.isdir(image_dir):
        raise ValueError(f"--images {image_dir!r} is not a directory")
    records = []
    for folder, _, names in sorted(os.walk(image_dir)):
        for name in sorted(names):
            if name.lower().endswith(IMAGE_SUFFIXES):
                path = os.path.join(folder, name)
                records.append({"image_path": os.path.abspath(path), "bboxes": [], "labels": [],
                                "source_id": os.path.relpath(path, image_dir)})
    if not records:
        raise ValueError(f"no {', '.join(IMAGE_SUFFIXES)} files below {image_dir!r}")
    return records


def _read_records(path: str) -> list:
    with open(path) as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


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


def _existing_classes(output: str) -> Optional[List[str]]:
    """The class names of ``output/label_map.json`` in id order (None without one), so that a second split
    gets the ids the first one got; ids must run 0..n-1."""
    from tfdet.dataio.label_map import label_map_path, read_label_map

    path = label_map_path(output)
    label_map = read_label_map(path)
    if not label_map:
        return None
    if sorted(label_map) != list(range(len(label_map))):
        raise ValueError(f"{path} has ids {sorted(label_map)}, not 0..{len(label_map) - 1}; pass --classes")
    print(f"classes from {path}: {', '.join(label_map[i] for i in range(len(label_map)))}")
    return [label_map[i] for i in range(len(label_map))]


def _convert(args: argparse.Namespace) -> int:
    from tfdet.dataio.converter import convert_dataset_to_tfrecord
    from tfdet.dataio.importers import load_coco_records, load_voc_records
    from tfdet.dataio.importers.voc import VOC_CLASSES

    label_map, num_classes = None, None
    if args.source == "coco":
        records, label_map, summary = load_coco_records(args.annotations, args.images, args.include_crowd,
                                                        args.allow_outside_images)
        print(f"COCO: {summary.images} images, {summary.boxes} boxes, left out {summary.skipped_boxes or 'none'}")
        if summary.skipped_ids.get("no_image"):
            print(f"  {len(summary.skipped_ids['no_image'])} annotation(s) name an image_id the file does not list: "
                  f"{', '.join(summary.skipped_ids['no_image'][:10])}")
    elif args.source == "voc":
        classes = None
        if args.classes:
            classes = VOC_CLASSES if args.classes == "voc" else [c.strip() for c in args.classes.split(",")]
        else:
            classes = _existing_classes(args.output)
        records, label_map, summary = load_voc_records(args.root, args.split, classes, not args.exclude_difficult,
                                                       allow_outside=args.allow_outside_images)
        print(f"VOC: {summary.images} images, {summary.boxes} boxes, left out {summary.skipped_boxes or 'none'}")
    elif args.source == "images":
        records = unlabelled_records(args.images)
        print(f"images: {len(records)} files without annotations in {args.images}")
    else:
        records, num_classes = _read_records(args.input), args.num_classes
    if label_map is not None:
        num_classes = len(label_map)
    report = convert_dataset_to_tfrecord(
        records, num_shards=args.num_shards, output_dir=args.output, prefix=args.prefix,
        num_classes=num_classes, label_map=label_map, on_error=args.on_error, num_workers=args.num_workers,
    )
    _print_report(report, args.output, args.prefix)
    if report.written == 0:
        reason = (f"all {report.records_seen} records were rejected" if report.records_seen
                  else "the input has no records")
        print(f"tfdet convert: error: nothing was written ({reason}); the shards in {args.output} are empty. "
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
    from tfdet.dataio.record_files import find_damaged_file
    from tfdet.dataio.steps.source import InputReadRecordFiles

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


