"""The tree-crown benchmark data: NEON aerial photos with hand-drawn crown boxes, from DeepForest's wheel.

The ``deepforest==2.1.0`` wheel on PyPI (MIT licence; sha256 pinned below) ships, in
``deepforest/data/``, four RGB images with Pascal VOC annotations: two crops of Yellowstone scenes
(2299x2472 px with 574 crowns, 1249x1035 px with 279) and two 400x400 tiles (OSBS_029, 61 crowns;
SOAP_061, 37 crowns labelled Alive / Dead; the others are labelled Tree).

Splits (:func:`make_voc_tiles`), so that no test pixel is seen in training or in any choice: one scene is the
test scene (the folds: the 1249x1035 Yellowstone scene, the main one; the other Yellowstone crop; OSBS_029); of
the others, the largest gives its bottom row of tiles -- a region, not random tiles, so that a crown cut by a tile
border does not sit half in training and half in validation -- to the validation split, on which every setting is
chosen; the rest is training data. Every image is cut into non-overlapping tiles of 400 px (a remainder under
200 px joins the last tile, so tiles are 200-599 px on a side); a box is kept in a tile, clipped, when at least
half of its area lies inside. The tiles are written as a Pascal VOC folder (ImageSets/Main/{train,val,test}.txt)
and converted by tfdet's VOC importer.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
import zipfile
from typing import Dict, List, Tuple

from PIL import Image

from tfdet.files import cache_dir, download

WHEEL = ("https://files.pythonhosted.org/packages/b7/a8/67e66685c81ec070372db546f933312c6d7401f845e200e5d900107ff51e/"
         "deepforest-2.1.0-py3-none-any.whl")
WHEEL_SHA256 = "8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54"
SCENES = ("2019_YELL_2_528000_4978000_image_crop2", "2019_YELL_2_541000_4977000_image_crop", "OSBS_029", "SOAP_061")
# the folds of the leave-one-scene-out rotation (SOAP_061, labelled Alive / Dead, has no 'Tree' to test on): the
# held-out scene of the README's figure first
TEST_SCENES = ("2019_YELL_2_541000_4977000_image_crop", "2019_YELL_2_528000_4978000_image_crop2", "OSBS_029")
TILE = 400
MIN_VISIBLE = 0.5

Box = Tuple[float, float, float, float, str]  # xmin, ymin, xmax, ymax, class


def fetch_wheel_data(into: str) -> str:
    """Downloads the wheel (sha256-checked, cached) and extracts ``deepforest/data``; returns that folder."""
    wheel = download(WHEEL, os.path.join(cache_dir("data"), os.path.basename(WHEEL)), WHEEL_SHA256)
    names = [f"deepforest/data/{stem}.{ext}" for stem in SCENES for ext in ("png", "xml")]
    with zipfile.ZipFile(wheel) as archive:
        for name in names:
            archive.extract(name, into)
    return os.path.join(into, "deepforest", "data")


def read_boxes(xml_file: str) -> List[Box]:
    root = ElementTree.parse(xml_file).getroot()
    boxes = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        corners = tuple(float(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append(corners + (obj.find("name").text,))
    return boxes


def tile_spans(size: int, tile: int = TILE) -> List[Tuple[int, int]]:
    """Non-overlapping (start, end) pieces of ``size`` pixels, ``tile`` long; a last piece shorter than
    half a tile joins the one before it (so tiles are 200-599 px and no pixel is in two tiles)."""
    starts = list(range(0, size, tile))
    if len(starts) > 1 and size - starts[-1] < tile // 2:
        starts.pop()
    return [(start, starts[i + 1] if i + 1 < len(starts) else size) for i, start in enumerate(starts)]


def tile_boxes(boxes: List[Box], x0: int, y0: int, x1: int, y1: int) -> List[Box]:
    """The boxes with at least MIN_VISIBLE of their area in the tile, clipped and moved into it."""
    kept = []
    for xmin, ymin, xmax, ymax, name in boxes:
        cx0, cy0, cx1, cy1 = max(xmin, x0), max(ymin, y0), min(xmax, x1), min(ymax, y1)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        if (cx1 - cx0) * (cy1 - cy0) >= MIN_VISIBLE * (xmax - xmin) * (ymax - ymin):
            kept.append((cx0 - x0, cy0 - y0, cx1 - x0, cy1 - y0, name))
    return kept


def _write_voc(path: str, filename: str, boxes: List[Box], width: int, height: int) -> None:
    objects = "".join(
        f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{xmin:.1f}</xmin><ymin>{ymin:.1f}</ymin>"
        f"<xmax>{xmax:.1f}</xmax><ymax>{ymax:.1f}</ymax></bndbox></object>" for xmin, ymin, xmax, ymax, name in boxes)
    with open(path, "w") as handle:
        handle.write(f"<annotation><filename>{filename}</filename><size><width>{width}</width>"
                     f"<height>{height}</height><depth>3</depth></size>{objects}</annotation>")


def make_voc_tiles(source: str, root: str, test_scene: str = TEST_SCENES[0]) -> Dict[str, Dict[str, int]]:
    """Tiles every scene into a VOC folder ``root`` with ImageSets/Main/{train,val,test}.txt (see the module
    docstring); returns the tiles and boxes of each split and which scenes went where."""
    for sub in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    images = {stem: Image.open(os.path.join(source, f"{stem}.png")).convert("RGB") for stem in SCENES}
    training = [stem for stem in SCENES if stem != test_scene]
    val_scene = max(training, key=lambda stem: images[stem].width * images[stem].height)
    splits: Dict[str, List[str]] = {"train": [], "val": [], "test": []}
    boxes_in = {split: 0 for split in splits}
    for stem in SCENES:
        boxes = read_boxes(os.path.join(source, f"{stem}.xml"))
        rows = tile_spans(images[stem].height)
        for row, (y0, y1) in enumerate(rows):
            for x0, x1 in tile_spans(images[stem].width):
                split = ("test" if stem == test_scene else
                         "val" if stem == val_scene and row == len(rows) - 1 else "train")
                name = f"{stem}_{x0}_{y0}"
                crop = images[stem].crop((x0, y0, x1, y1))
                crop.save(os.path.join(root, "JPEGImages", f"{name}.png"))
                kept = tile_boxes(boxes, x0, y0, x1, y1)
                _write_voc(os.path.join(root, "Annotations", f"{name}.xml"), f"{name}.png", kept, *crop.size)
                splits[split].append(name)
                boxes_in[split] += len(kept)
    for split, names in splits.items():
        with open(os.path.join(root, "ImageSets", "Main", f"{split}.txt"), "w") as handle:
            handle.write("\n".join(names) + "\n")
    counts = {split: {"tiles": len(names), "boxes": boxes_in[split]} for split, names in splits.items()}
    return {**counts, "scenes": {"test": test_scene, "val": f"{val_scene} (its bottom row of tiles)",
                                 "train": training}}
