"""Pascal VOC XML folders -> seed records (``tfdet convert voc``)."""

from __future__ import annotations

import argparse
import glob
import os
import xml.etree.ElementTree as ElementTree
from typing import Dict, List, Optional, Sequence, Tuple

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from tfdet.dataio.importers.common import Imported, Importer, ImportSummary, resolve_image, summary_line
from tfdet.registry import IMPORTERS

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def _text(node: ElementTree.Element, path: str, xml_file: str) -> str:
    found = node.find(path)
    if found is None or found.text is None:
        raise ValueError(f"{xml_file}: missing <{path}>; is this a Pascal VOC annotation?")
    return found.text.strip()


def _parse(xml_file: str) -> ElementTree.Element:
    """Parses with defusedxml: entity expansion and external entities are refused, whatever expat's version."""
    try:
        return SafeElementTree.parse(xml_file).getroot()
    except DefusedXmlException as error:
        raise ValueError(f"{xml_file}: refused: {error}; VOC annotations need no entities or DTDs") from None
    except ElementTree.ParseError as error:
        raise ValueError(f"{xml_file}: not well-formed XML ({error}); is it a Pascal VOC annotation?") from None
    except OSError as error:
        raise ValueError(f"{xml_file}: cannot be read ({error.strerror})") from None


def _coordinate(obj: ElementTree.Element, key: str, xml_file: str, index: int) -> float:
    text = _text(obj, f"bndbox/{key}", xml_file)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{xml_file}: object {index} has <{key}>{text}</{key}>, not a number") from None


def load_voc_records(root: str, split: Optional[str] = None, class_names: Optional[Sequence[str]] = None,
                     include_difficult: bool = True, annotations_dir: str = "Annotations",
                     images_dir: str = "JPEGImages",
                     allow_outside: bool = False) -> Tuple[List[dict], Dict[int, str], ImportSummary]:
    """Reads a Pascal VOC style folder into seed records.

    Boxes are taken as the XML gives them (``xmin, ymin, xmax, ymax`` in
    pixels, as the TF Object Detection API does), turned y-first.

    Args:
        root: the folder holding ``Annotations/`` and ``JPEGImages/``.
        split: a name in ``ImageSets/Main/<split>.txt`` (e.g. ``"train"``);
            None reads every XML file.
        class_names: the classes, in id order; None: the sorted names found.
            A name outside an explicit list is an error.
        include_difficult: keep objects marked ``<difficult>1``.
        annotations_dir, images_dir: sub-folder names.
        allow_outside: accept ``<filename>``s that lead outside ``images_dir``
            (trusted annotations only; otherwise they are refused).

    Returns:
        (records, label map id -> name, import summary).

    Raises:
        ValueError: naming the XML file: not well-formed, entities, a missing or
            non-numeric field, a class outside ``class_names``, an image outside ``images_dir``.
    """
    if split is None:
        xml_files = sorted(glob.glob(os.path.join(root, annotations_dir, "*.xml")))
    else:
        list_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
        if not os.path.exists(list_file):
            raise FileNotFoundError(f"{list_file} does not exist; pass split=None to read every annotation")
        with open(list_file) as handle:
            xml_files = [os.path.join(root, annotations_dir, f"{line.split()[0]}.xml")
                         for line in handle if line.strip()]
    if not xml_files:
        raise FileNotFoundError(f"no VOC annotations under {os.path.join(root, annotations_dir)}")

    parsed = []
    for xml_file in xml_files:
        tree = _parse(xml_file)
        objects = []
        for index, obj in enumerate(tree.findall("object")):
            difficult = obj.find("difficult")
            objects.append((
                _text(obj, "name", xml_file),
                [_coordinate(obj, k, xml_file, index) for k in ("ymin", "xmin", "ymax", "xmax")],
                difficult is not None and (difficult.text or "0").strip() == "1",
            ))
        parsed.append((xml_file, _text(tree, "filename", xml_file), objects))

    names = list(class_names) if class_names is not None else sorted({o[0] for _, _, objs in parsed for o in objs})
    to_label = {name: i for i, name in enumerate(names)}
    summary = ImportSummary()
    records = []
    for xml_file, filename, objects in parsed:
        boxes, labels = [], []
        for name, box, difficult in objects:
            if name not in to_label:
                raise ValueError(f"{xml_file}: object class {name!r} is not in class_names {names}; pass every "
                                 f"class name in id order (tfdet convert voc --classes a,b,c)")
            if difficult and not include_difficult:
                summary.skip("difficult")
                continue
            boxes.append(box)
            labels.append({"id": to_label[name], "name": name})
        image_path = resolve_image(os.path.join(root, images_dir), filename, xml_file, allow_outside)
        records.append({"image_path": image_path, "bboxes": boxes, "labels": labels,
                        "source_id": os.path.splitext(os.path.basename(xml_file))[0]})
        summary.images += 1
        summary.boxes += len(boxes)
    return records, dict(enumerate(names)), summary


def existing_classes(output: str) -> Optional[List[str]]:
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


@IMPORTERS.register("voc")
class VocImporter(Importer):
    """``tfdet convert voc --root VOCdevkit/VOC2012 [--split train] [--classes voc|a,b,c]``."""

    help = "a Pascal VOC folder (Annotations/, JPEGImages/)"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--root", required=True)
        parser.add_argument("--split", default=None, help="ImageSets/Main/<split>.txt; default: every XML")
        parser.add_argument("--classes", default=None,
                            help="comma-separated class names in id order; 'voc' for VOC's 20; default: the ids of "
                                 "label_map.json in --output (written by an earlier split), else the sorted names "
                                 "found")
        parser.add_argument("--exclude-difficult", action="store_true")
        parser.add_argument("--allow-outside-images", action="store_true",
                            help="accept <filename>s outside JPEGImages/ (trusted annotations only)")

    @staticmethod
    def load(args: argparse.Namespace) -> Imported:
        if args.classes:
            classes = VOC_CLASSES if args.classes == "voc" else [c.strip() for c in args.classes.split(",")]
        else:
            classes = existing_classes(args.output)
        records, label_map, summary = load_voc_records(args.root, args.split, classes, not args.exclude_difficult,
                                                       allow_outside=args.allow_outside_images)
        return Imported(records, label_map, summary=summary_line("VOC", summary))
