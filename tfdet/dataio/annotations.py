"""Validation and encoding of one seed input record.

A record is ``{'image_path': str, 'bboxes': [[y_min, x_min, y_max, x_max], ...]
in pixels, 'labels': [{'id': int, 'name': str}, ...]}``; an optional
``'source_id'`` names the image. Everything here is pure Python + Pillow +
protobuf, so it runs in worker processes.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, List, Mapping, Optional, Tuple

from PIL import Image, ImageOps, UnidentifiedImageError

from tfdet.dataio import features

_BOX_HINT = "boxes are [y_min, x_min, y_max, x_max] in pixels, y first"


class RecordError(ValueError):
    """A record that cannot be converted.

    Attributes:
        index: the record's position in the input.
        image_path: the record's image path (or None if it has none).
        code: a short machine-readable reason, e.g. ``"box_inverted"``.
    """

    def __init__(self, index: int, image_path: Optional[str], code: str, detail: str) -> None:
        self.index = index
        self.image_path = image_path
        self.code = code
        self.detail = detail
        where = f"record {index}" + (f" ({image_path})" if image_path else "")
        super().__init__(f"{where}: {detail}")

    def __reduce__(self):
        # The default reduction passes only the message to __init__, so the error could not cross a
        # process boundary (the converter's workers send it back to the parent).
        return type(self), (self.index, self.image_path, self.code, self.detail)


@dataclass
class EncodedRecord:
    """A validated record, serialized as a tf.Example."""

    index: int
    image_path: str
    serialized: bytes
    labels: List[Tuple[int, str]]
    source_id: str
    reoriented: bool = False


def _fail(index: int, path: Optional[str], code: str, detail: str) -> RecordError:
    return RecordError(index, path, code, detail)


def _check_structure(index: int, record: Any) -> Tuple[str, list, list]:
    if not isinstance(record, Mapping):
        raise _fail(index, None, "malformed_record",
                    f"expected a dict with image_path, bboxes and labels, got {type(record).__name__}")
    missing = [key for key in ("image_path", "bboxes", "labels") if key not in record]
    path = record.get("image_path") if isinstance(record.get("image_path"), str) else None
    if missing:
        raise _fail(index, path, "malformed_record", f"missing key(s) {', '.join(missing)}")
    if path is None:
        raise _fail(index, None, "malformed_record",
                    f"image_path must be a string, got {record['image_path']!r}")
    bboxes, labels = record["bboxes"], record["labels"]
    if not isinstance(bboxes, (list, tuple)) or not isinstance(labels, (list, tuple)):
        raise _fail(index, path, "malformed_record", "bboxes and labels must be lists")
    if len(bboxes) != len(labels):
        raise _fail(index, path, "malformed_record",
                    f"{len(bboxes)} bboxes but {len(labels)} labels; give one label per box")
    return path, list(bboxes), list(labels)


def _check_labels(index: int, path: str, labels: list, num_classes: Optional[int]) -> List[Tuple[int, str]]:
    checked = []
    for j, label in enumerate(labels):
        if not isinstance(label, Mapping) or "id" not in label or "name" not in label:
            raise _fail(index, path, "malformed_record",
                        f"label {j} is {label!r}; expected {{'id': int, 'name': str}}")
        label_id, name = label["id"], label["name"]
        if isinstance(label_id, bool) or not isinstance(label_id, Integral):
            raise _fail(index, path, "malformed_record", f"label {j} id {label_id!r} is not an integer")
        if not isinstance(name, str) or not name:
            raise _fail(index, path, "malformed_record", f"label {j} name {name!r} is not a non-empty string")
        if label_id < 0 or (num_classes is not None and label_id >= num_classes):
            bound = f"0 <= id < {num_classes}" if num_classes is not None else "0 <= id"
            raise _fail(index, path, "label_out_of_range",
                        f"label {j} ({name!r}) has id {label_id}, outside {bound}; "
                        f"map class ids to 0-based ids or raise num_classes")
        checked.append((int(label_id), name))
    return checked


def _upright(image: Image.Image, image_format: str) -> Optional[bytes]:
    """The image re-encoded upright when its EXIF orientation turns or mirrors it (None when it does not)."""
    orientation = image.getexif().get(0x0112, 1)
    if orientation not in range(2, 9):
        return None
    buffer = io.BytesIO()
    upright = ImageOps.exif_transpose(image).convert("RGB")
    if image_format == "jpeg":
        upright.save(buffer, format="JPEG", quality=95)
    else:
        upright.save(buffer, format="PNG")
    return buffer.getvalue()


def _read_image(index: int, path: str) -> Tuple[bytes, str, int, int, bool]:
    if not os.path.exists(path):
        raise _fail(index, path, "missing_file", "image file does not exist; check image_path")
    if os.path.isdir(path):
        raise _fail(index, path, "unreadable_file", "image_path is a directory, not an image file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise _fail(index, path, "unreadable_file", f"cannot read the image file: {error}") from None
    reoriented = False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a full decode catches truncated files
            image_format = (image.format or "").lower()
            if image_format not in ("jpeg", "png"):
                # Keep the pipeline to the two formats TF decodes everywhere.
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, format="PNG")
                data, image_format = buffer.getvalue(), "png"
            upright = _upright(image, image_format)
            if upright is not None:  # boxes are drawn on the displayed (upright) picture
                data, reoriented = upright, True
                image = Image.open(io.BytesIO(data))
            width, height = image.size
    except UnidentifiedImageError:
        raise _fail(index, path, "undecodable_image",
                    "the file is not a decodable image (not a format Pillow recognises)") from None
    except Exception as error:  # Pillow raises many types for corrupt data
        raise _fail(index, path, "undecodable_image",
                    f"the file is not a decodable image ({type(error).__name__}: {error})") from None
    return data, image_format, height, width, reoriented


def _check_box(index: int, path: str, j: int, box: Any, height: int, width: int) -> List[float]:
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(
        isinstance(v, Real) and not isinstance(v, bool) for v in box
    ):
        raise _fail(index, path, "malformed_record", f"box {j} is {box!r}; expected 4 numbers ({_BOX_HINT})")
    try:
        y_min, x_min, y_max, x_max = (float(v) for v in box)
    except OverflowError:  # an integer such as 10**400 has no float
        raise _fail(index, path, "box_not_finite",
                    f"box {j} has a coordinate too large for a float; boxes are pixel coordinates") from None
    shown = f"box {j} [{y_min:g}, {x_min:g}, {y_max:g}, {x_max:g}]"
    if not all(math.isfinite(v) for v in (y_min, x_min, y_max, x_max)):
        raise _fail(index, path, "box_not_finite", f"{shown} has a NaN or infinite coordinate")
    if y_max < y_min or x_max < x_min:
        raise _fail(index, path, "box_inverted",
                    f"{shown} is inverted (needs y_min < y_max and x_min < x_max; {_BOX_HINT})")
    if y_max == y_min or x_max == x_min:
        raise _fail(index, path, "box_zero_area", f"{shown} has zero area; drop it or fix its size")
    if y_min < 0 or x_min < 0 or y_max > height or x_max > width:
        raise _fail(index, path, "box_outside_image",
                    f"{shown} lies outside the {height}x{width} (height x width) image ({_BOX_HINT})")
    return [y_min / height, x_min / width, y_max / height, x_max / width]


def encode_record(index: int, record: Any, num_classes: Optional[int], source_prefix: str = "") -> EncodedRecord:
    """Validates one record and encodes it as a serialized tf.Example.

    Args:
        index: the record's position in the input (used in errors and ids).
        record: the seed record dict.
        num_classes: ids must be below it; None checks only ``id >= 0``.
        source_prefix: prefix of the default ``image/source_id``.

    Raises:
        RecordError: naming the record and what is wrong with it.
    """
    path, bboxes, labels = _check_structure(index, record)
    checked_labels = _check_labels(index, path, labels, num_classes)
    data, image_format, height, width, reoriented = _read_image(index, path)
    boxes = [_check_box(index, path, j, box, height, width) for j, box in enumerate(bboxes)]
    if bboxes and max(height, width) > 2 and all(max(box) <= 1.0 for box in bboxes):
        raise _fail(index, path, "box_looks_normalised",
                    f"every box lies within [0, 1] pixels of a {height}x{width} image; boxes look normalised: "
                    f"multiply y by the height and x by the width ({_BOX_HINT})")
    source_id = str(record.get("source_id", f"{source_prefix}{index}"))
    example = features.make_example(
        encoded=data,
        image_format=image_format,
        height=height,
        width=width,
        filename=os.path.basename(path),
        source_id=source_id,
        boxes=boxes,
        label_ids=[label_id for label_id, _ in checked_labels],
        label_names=[name for _, name in checked_labels],
    )
    return EncodedRecord(index, path, example.SerializeToString(deterministic=True), checked_labels, source_id,
                         reoriented)
