import io
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from tfdet.dataio.image_format import apply_orientation, decode_image, inspect_image


def encode(pixels: np.ndarray, image_format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def pattern(height=6, width=10) -> np.ndarray:
    """A smooth image (JPEG decoders agree on it) with different corners, so that any flip or turn shows."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([y * 200 // height, x * 200 // width, (x + 2 * y) * 6], -1).astype(np.uint8)


def with_orientation(pixels: np.ndarray, orientation: int, image_format: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(pixels, image_format, exif=exif.tobytes(), quality=100, subsampling=0)


def bomb_png(height: int, width: int) -> bytes:
    """A valid 1-bit PNG of height x width pixels, a few KB of zlib data."""
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    rows = zlib.compress(b"".join(b"\x00" + b"\x00" * ((width + 7) // 8) for _ in range(height)), 9)
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def inspected(data: bytes, **kwargs) -> dict:
    return {k: v.numpy() for k, v in inspect_image(tf.constant(data), **kwargs).items()}


def test_sizes_come_from_the_headers():
    for image_format in ("PNG", "JPEG"):
        found = inspected(encode(pattern(30, 50), image_format))
        assert (found["ok"], found["error"], found["height"], found["width"]) == (True, b"", 30, 50)
    progressive = inspected(encode(pattern(31, 17), "JPEG", progressive=True))
    assert (progressive["height"], progressive["width"]) == (31, 17)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(orientation):
    data = with_orientation(pattern(24, 40), orientation)
    found = inspected(data)
    assert found["ok"] and found["orientation"] == orientation
    stored = np.asarray(Image.open(io.BytesIO(data)))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    np.testing.assert_array_equal(apply_orientation(tf.constant(stored), found["orientation"]).numpy(), expected)
    decoded = decode_image(tf.constant(data)).numpy()  # TF's decoder: the same picture, rounded its own way
    assert decoded.shape == expected.shape
    assert np.abs(decoded.astype(int) - expected.astype(int)).mean() < 2


def test_hostile_and_broken_bytes_are_refused_with_the_reason():
    jpeg, png = encode(pattern(40, 40), "JPEG"), encode(pattern(40, 40))
    cases = {
        b"": "empty image bytes",
        encode(pattern(), "WEBP"): "not a JPEG or PNG image; convert it to JPEG or PNG",
        encode(pattern(), "TIFF"): "not a JPEG or PNG image; convert it to JPEG or PNG",
        b"<html>not an image</html>": "not a JPEG or PNG image; convert it to JPEG or PNG",
        jpeg[:len(jpeg) // 2]: "the image is cut short (no end marker); send the whole file",
        png[:len(png) - 20]: "the image is cut short (no end marker); send the whole file",
        png[:12] + b"XXXX" + png[16:]: "the image header is unreadable (corrupt file)",
        bomb_png(12000, 12000): "the image declares 12000x12000 pixels (height x width), more than the limit of "
                                "50000000; send a smaller image",
    }
    for data, error in cases.items():
        found = inspected(data)
        assert (found["ok"], found["error"].decode()) == (False, error)
    assert inspected(encode(pattern(40, 40)), max_pixels=1000)["error"].startswith(b"the image declares 40x40")
    assert len(bomb_png(12000, 12000)) < 40_000  # what makes the limit necessary
