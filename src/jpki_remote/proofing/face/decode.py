"""Turn untrusted image bytes (a camera capture, a card photo) into an 8-bit RGB array, or a clear FaceIssue.

Only JPEG, PNG and JPEG 2000 are accepted. The pixel count is checked from the header before anything is decoded
(decompression bombs), truncated files are refused rather than padded with grey, and every colour mode a camera or
a card can produce (greyscale, 16-bit, CMYK, palette, alpha) is converted to RGB the same way. Nothing is written
anywhere: the decoded pixels live only in the returned array.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from jpki_remote.proofing.face.issues import FaceIssue

ACCEPTED_FORMATS = ("JPEG", "PNG", "JPEG2000")
DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels: far above any kiosk or phone camera frame
DEFAULT_MAX_BYTES = 30_000_000
_TRUNCATION_LOCK = threading.Lock()
_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"\x00\x00\x00\x0cjP  ",  # JPEG 2000 (JP2 box)
    b"\xff\x4f\xff\x51",  # JPEG 2000 codestream
)


class ImageRejected(Exception):
    """The input is not a usable image; ``issue`` says why."""

    def __init__(self, issue: FaceIssue, detail: str) -> None:
        super().__init__(f"{issue.value}: {detail}")
        self.issue = issue
        self.detail = detail


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
) -> np.ndarray:
    """Decode ``data`` to an ``(H, W, 3)`` uint8 RGB array (EXIF orientation applied). Raises ImageRejected."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageRejected(FaceIssue.UNREADABLE_IMAGE, f"expected bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageRejected(FaceIssue.UNREADABLE_IMAGE, "empty input")
    if len(data) > max_bytes:
        raise ImageRejected(FaceIssue.IMAGE_TOO_LARGE, f"{len(data)} bytes (limit {max_bytes})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(bytes(data)), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(FaceIssue.IMAGE_TOO_LARGE, str(exc)) from exc
    except UnidentifiedImageError as exc:
        if bytes(data[:12]).startswith(_SIGNATURES):  # an accepted format's magic number, then garbage
            raise ImageRejected(FaceIssue.UNREADABLE_IMAGE, "damaged JPEG/PNG/JPEG 2000 data") from exc
        raise ImageRejected(FaceIssue.UNSUPPORTED_FORMAT, "not a JPEG, PNG or JPEG 2000 image") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected(FaceIssue.UNREADABLE_IMAGE, f"header: {exc}") from exc
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageRejected(FaceIssue.UNREADABLE_IMAGE, f"size {width}x{height}")
        if width * height > max_pixels:
            raise ImageRejected(FaceIssue.IMAGE_TOO_LARGE, f"{width}x{height} pixels (limit {max_pixels} pixels)")
        try:
            with _strict_truncation():
                image.load()
            image = ImageOps.exif_transpose(image) or image
            return to_rgb(image)
        except ImageRejected:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError, Image.DecompressionBombError) as exc:
            raise ImageRejected(FaceIssue.UNREADABLE_IMAGE, f"pixel data: {exc}") from exc


@contextmanager
def _strict_truncation() -> Iterator[None]:
    """Refuse truncated files even if something flipped Pillow's process-wide switch (importing face_recognition.api
    sets ``ImageFile.LOAD_TRUNCATED_IMAGES = True``; a cut-off upload would then decode as a grey-padded picture)."""
    with _TRUNCATION_LOCK:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to 8-bit RGB: 16/32-bit and float greyscale are rescaled, alpha is laid on white."""
    mode = image.mode
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}:
        grey = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            top = 65535.0
        else:
            low = float(np.nanmin(grey)) if grey.size else 0.0
            grey = grey - min(low, 0.0)
            top = max(float(np.nanmax(grey)) if grey.size else 0.0, 255.0)
        grey8 = np.clip(np.nan_to_num(grey) * (255.0 / top), 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.stack([grey8] * 3, axis=-1))
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(array)


def as_rgb_array(
    image: bytes | bytearray | memoryview | np.ndarray, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Accept bytes (decoded here) or an array (uint8 greyscale, RGB or RGBA) and return (H, W, 3) uint8 RGB."""
    if not isinstance(image, np.ndarray):
        return decode_image(image, max_pixels=max_pixels)  # type: ignore[arg-type]
    if image.dtype != np.uint8:
        raise ImageRejected(FaceIssue.UNREADABLE_IMAGE, f"array dtype {image.dtype}, expected uint8")
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ImageRejected(FaceIssue.UNREADABLE_IMAGE, f"array shape {image.shape}, expected (H, W, 3)")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ImageRejected(FaceIssue.UNREADABLE_IMAGE, f"array shape {image.shape}")
    if height * width > max_pixels:
        raise ImageRejected(FaceIssue.IMAGE_TOO_LARGE, f"{width}x{height} pixels (limit {max_pixels} pixels)")
    return np.ascontiguousarray(image)
