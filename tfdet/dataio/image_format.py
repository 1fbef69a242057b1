"""What tfdet accepts as an encoded image, checked before decoding, in the TensorFlow graph.

Serving takes bytes from anyone: a 30 KB PNG can declare 12000x12000 pixels and decode to 1.7 GB.
:func:`inspect_image` reads only the headers (PNG's IHDR; JPEG's SOF segment, found by walking the
marker segments) and says, for one encoded image, whether it is a JPEG or PNG of at most
``max_pixels`` pixels that is not cut short, and why not. It also reads the EXIF orientation of
JPEGs (tag 0x0112 in the APP1 segment), which :func:`decode_image` applies, so a phone photo
comes out upright in the converter, the input pipeline and serving alike (the orientation is the
one its boxes were drawn on).

Everything is graph ops (no Python at run time): it runs inside ``tf.data`` and in an exported
SavedModel.
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFAULT_MAX_PIXELS = 50_000_000  # a 48-megapixel phone photo fits
_SOF_MARKERS = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
_MAX_SEGMENTS = 64
_TAIL = 4096  # a JPEG's end-of-image marker must lie in its last bytes (trailers such as MPF may follow it)
_MAX_IFD_ENTRIES = 64


def _bytes_at(encoded: tf.Tensor, position: tf.Tensor, count: int) -> tf.Tensor:
    """``count`` bytes at ``position`` as int32 (zeros past the end)."""
    piece = tf.strings.substr(encoded, position, count)
    values = tf.cast(tf.io.decode_raw(piece, tf.uint8), tf.int32)
    return tf.reshape(tf.pad(values, [[0, count - tf.shape(values)[0]]]), [count])


def _big_endian(values: tf.Tensor) -> tf.Tensor:
    result = tf.constant(0, tf.int64)
    for i in range(values.shape[0]):
        result = result * 256 + tf.cast(values[i], tf.int64)
    return result


def _contains(data: tf.Tensor, part: bytes) -> tf.Tensor:
    """Whether a string scalar contains ``part`` (bytewise)."""
    return tf.size(tf.strings.split(data, sep=part)) > 1


def _exif_orientation(encoded: tf.Tensor, start: tf.Tensor) -> tf.Tensor:
    """The orientation (1-8; 1 when absent or unreadable) of an APP1 segment whose data begins at ``start``."""
    is_exif = tf.equal(tf.strings.substr(encoded, start, 6), b"Exif\x00\x00")
    tiff = start + 6
    little = tf.equal(tf.strings.substr(encoded, tiff, 2), b"II")

    def number(position, count):
        values = _bytes_at(encoded, position, count)
        return tf.where(little, _big_endian(tf.reverse(values, [0])), _big_endian(values))

    ifd = tiff + tf.cast(number(tiff + 4, 4), tf.int32)
    entries = tf.minimum(tf.cast(number(ifd, 2), tf.int32), _MAX_IFD_ENTRIES)
    table = tf.reshape(_bytes_at(encoded, ifd + 2, 12 * _MAX_IFD_ENTRIES), [_MAX_IFD_ENTRIES, 12])
    first, second = tf.where(little, table[:, 1], table[:, 0]), tf.where(little, table[:, 0], table[:, 1])
    value_first, value_second = tf.where(little, table[:, 9], table[:, 8]), tf.where(little, table[:, 8], table[:, 9])
    is_orientation = tf.logical_and(tf.equal(first * 256 + second, 0x0112), tf.range(_MAX_IFD_ENTRIES) < entries)
    values = value_first * 256 + value_second
    orientation = tf.reduce_max(tf.where(is_orientation, values, 0))
    valid = tf.logical_and(is_exif, tf.logical_and(orientation >= 1, orientation <= 8))
    return tf.where(valid, orientation, 1)


def _jpeg_header(encoded: tf.Tensor):
    """(found, height, width, orientation) by walking the marker segments up to the frame header."""
    length = tf.strings.length(encoded)

    def keep_going(position, found, height, width, orientation, step):
        return tf.logical_and(tf.logical_not(found), tf.logical_and(step < _MAX_SEGMENTS, position + 4 <= length))

    def segment(position, found, height, width, orientation, step):
        marker = _bytes_at(encoded, position, 4)
        size = marker[2] * 256 + marker[3]
        is_marker = tf.equal(marker[0], 0xFF)
        is_sof = tf.reduce_any(tf.equal(marker[1], tf.constant(_SOF_MARKERS, tf.int32)))
        frame = _bytes_at(encoded, position + 5, 4)
        orientation = tf.cond(tf.logical_and(is_marker, tf.equal(marker[1], 0xE1)),
                              lambda: _exif_orientation(encoded, position + 4), lambda: orientation)
        found = tf.logical_and(is_marker, is_sof)
        height = tf.where(found, frame[0] * 256 + frame[1], height)
        width = tf.where(found, frame[2] * 256 + frame[3], width)
        # a non-marker byte ends the walk (position jumps past the end)
        position = tf.where(is_marker, position + 2 + size, length)
        return position, found, height, width, orientation, step + 1

    _, found, height, width, orientation, _ = tf.while_loop(
        keep_going, segment, (tf.constant(2), tf.constant(False), tf.constant(0), tf.constant(0), tf.constant(1),
                              tf.constant(0)))
    return found, height, width, orientation


def inspect_image(encoded: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS) -> Dict[str, tf.Tensor]:
    """Checks one encoded image (a string scalar) from its headers, without decoding it.

    Returns:
        ``ok`` (bool), ``error`` (string, empty when ok: what is wrong and what to do), ``height``,
        ``width`` (int32, as stored), ``orientation`` (int32 EXIF orientation, 1 when none).
    """
    length = tf.strings.length(encoded)
    is_jpeg = tf.equal(tf.strings.substr(encoded, 0, 3), JPEG_MAGIC)
    is_png = tf.equal(tf.strings.substr(encoded, 0, 8), PNG_MAGIC)

    def png():
        header = _bytes_at(encoded, 16, 8)
        ok = tf.equal(tf.strings.substr(encoded, 12, 4), b"IHDR")
        ended = _contains(tf.strings.substr(encoded, tf.maximum(length - 12, 0), 12), b"IEND")
        width, height = tf.cast(_big_endian(header[:4]), tf.int32), tf.cast(_big_endian(header[4:]), tf.int32)
        return ok, ended, height, width, tf.constant(1)

    def jpeg():
        found, height, width, orientation = _jpeg_header(encoded)
        ended = _contains(tf.strings.substr(encoded, tf.maximum(length - _TAIL, 0), _TAIL), b"\xff\xd9")
        return found, ended, height, width, orientation

    def neither():
        return tf.constant(False), tf.constant(False), tf.constant(0), tf.constant(0), tf.constant(1)

    header_ok, ended, height, width, orientation = tf.case(
        [(is_png, png), (is_jpeg, jpeg)], default=neither, exclusive=True)
    pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
    size = tf.strings.format("{}x{}", (height, width))
    error = tf.case([
        (tf.equal(length, 0), lambda: tf.constant("empty image bytes")),
        (tf.logical_not(tf.logical_or(is_jpeg, is_png)),
         lambda: tf.constant("not a JPEG or PNG image; convert it to JPEG or PNG")),
        (tf.logical_not(header_ok), lambda: tf.constant("the image header is unreadable (corrupt file)")),
        (tf.logical_or(height <= 0, width <= 0), lambda: tf.strings.join(["the image declares ", size, " pixels"])),
        (pixels > max_pixels, lambda: tf.strings.join([
            "the image declares ", size, " pixels (height x width), more than the limit of ",
            tf.strings.as_string(tf.constant(max_pixels, tf.int64)), "; send a smaller image"])),
        (tf.logical_not(ended), lambda: tf.constant("the image is cut short (no end marker); send the whole file")),
    ], default=lambda: tf.constant(""))
    return {"ok": tf.equal(error, ""), "error": error, "height": height, "width": width, "orientation": orientation}


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turns a decoded image [H, W, C] upright for an EXIF orientation 1-8 (as Pillow's exif_transpose)."""
    branches = [
        lambda: image,  # 1: upright
        lambda: tf.reverse(image, [1]),  # 2: mirrored left-right
        lambda: tf.reverse(image, [0, 1]),  # 3: rotated 180
        lambda: tf.reverse(image, [0]),  # 4: mirrored top-bottom
        lambda: tf.transpose(image, [1, 0, 2]),  # 5: transposed
        lambda: tf.reverse(tf.transpose(image, [1, 0, 2]), [1]),  # 6: rotated 90 clockwise to view
        lambda: tf.reverse(tf.transpose(image, [1, 0, 2]), [0, 1]),  # 7: transversed
        lambda: tf.reverse(tf.transpose(image, [1, 0, 2]), [0]),  # 8: rotated 90 counter-clockwise to view
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    upright = tf.switch_case(index, branches)
    upright.set_shape([None, None, image.shape[-1]])
    return upright


def decode_image(encoded: tf.Tensor, orientation=None) -> tf.Tensor:
    """Decodes JPEG / PNG bytes to uint8 [H, W, 3], turned upright by the EXIF orientation (read when not given)."""
    if orientation is None:
        is_jpeg = tf.equal(tf.strings.substr(encoded, 0, 3), JPEG_MAGIC)
        orientation = tf.cond(is_jpeg, lambda: _jpeg_header(encoded)[3], lambda: tf.constant(1))
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return apply_orientation(image, orientation)
