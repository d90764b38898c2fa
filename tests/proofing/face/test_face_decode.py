"""Untrusted image bytes: every odd input becomes a FaceIssue, never an exception; every colour mode works."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from jpki_remote.proofing.face import FaceIssue, analyse, face_distance
from jpki_remote.proofing.face.decode import ImageRejected, as_rgb_array, decode_image


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _issue(data: bytes) -> FaceIssue:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data)
    return caught.value.issue


def test_zero_bytes_is_unreadable() -> None:
    assert _issue(b"") is FaceIssue.UNREADABLE_IMAGE
    assert analyse(b"").verdict.issues == (FaceIssue.UNREADABLE_IMAGE,)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_jpeg_is_unreadable(faces_dir: Path, keep: float) -> None:
    data = (faces_dir / "obama" / "2.jpg").read_bytes()
    assert _issue(data[: int(len(data) * keep)]) is FaceIssue.UNREADABLE_IMAGE


def test_truncated_png_is_unreadable(faces_dir: Path) -> None:
    data = (faces_dir / "lin_manuel_miranda" / "1.png").read_bytes()
    assert _issue(data[: len(data) // 2]) is FaceIssue.UNREADABLE_IMAGE


def test_truncation_is_refused_even_if_pillow_was_told_to_pad(faces_dir: Path) -> None:
    """Importing face_recognition.api sets LOAD_TRUNCATED_IMAGES = True process-wide; we stay strict anyway."""
    data = (faces_dir / "obama" / "2.jpg").read_bytes()
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        assert _issue(data[: len(data) // 2]) is FaceIssue.UNREADABLE_IMAGE
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for whoever set it
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def test_text_and_other_formats_are_unsupported(faces_dir: Path, obama_rgb: np.ndarray) -> None:
    assert _issue((faces_dir / "README.md").read_bytes()) is FaceIssue.UNSUPPORTED_FORMAT
    small = Image.fromarray(obama_rgb).resize((200, 250))
    for fmt in ("GIF", "BMP", "TIFF"):
        assert _issue(_save(small, fmt)) is FaceIssue.UNSUPPORTED_FORMAT, fmt


def _png_claiming(width: int, height: int) -> bytes:
    """A valid small PNG whose header claims ``width`` x ``height`` (a decompression bomb's calling card)."""
    data = bytearray(_save(Image.new("L", (8, 8)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def test_huge_dimensions_are_refused_before_decoding() -> None:
    assert _issue(_png_claiming(60_000, 60_000)) is FaceIssue.IMAGE_TOO_LARGE
    assert _issue(_png_claiming(9_000, 9_000)) is FaceIssue.IMAGE_TOO_LARGE  # 81 Mpx > 40 Mpx cap
    with pytest.raises(ImageRejected) as caught:
        decode_image(_save(Image.new("L", (400, 400)), "PNG"), max_pixels=100_000)
    assert caught.value.issue is FaceIssue.IMAGE_TOO_LARGE


def test_array_inputs_are_checked() -> None:
    assert as_rgb_array(np.zeros((10, 12), dtype=np.uint8)).shape == (10, 12, 3)
    assert as_rgb_array(np.zeros((10, 12, 4), dtype=np.uint8)).shape == (10, 12, 3)
    for bad in (
        np.zeros((10, 12, 3), dtype=np.float32),
        np.zeros((10, 12, 2), dtype=np.uint8),
        np.zeros((0, 5, 3), np.uint8),
    ):
        with pytest.raises(ImageRejected):
            as_rgb_array(bad)
    assert analyse(np.zeros((4, 4, 3), dtype=np.float64)).verdict.issues == (FaceIssue.UNREADABLE_IMAGE,)


def _variants(rgb: np.ndarray) -> dict[str, bytes]:
    image = Image.fromarray(rgb)
    grey = np.asarray(image.convert("L"))
    return {
        "cmyk_jpeg": _save(image.convert("CMYK"), "JPEG", quality=95),
        "grey_jpeg": _save(image.convert("L"), "JPEG", quality=95),
        "grey16_png": _save(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
        "palette_png": _save(image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256), "PNG"),
        "rgba_png": _save(image.convert("RGBA"), "PNG"),
        "jp2_grey": _save(image.convert("L"), "JPEG2000"),
    }


def test_colour_modes_decode_to_the_same_face(faces_dir: Path) -> None:
    data = (faces_dir / "obama" / "2.jpg").read_bytes()
    rgb = decode_image(data)
    rgb = np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] // 2, rgb.shape[0] // 2)))
    original = analyse(rgb)
    assert original.usable
    for name, variant in _variants(rgb).items():
        decoded = decode_image(variant)
        assert decoded.dtype == np.uint8 and decoded.ndim == 3 and decoded.shape[2] == 3, name
        # 16-bit greyscale must be rescaled, not clipped to white
        assert 60 < decoded.mean() < 200, (name, decoded.mean())
        result = analyse(variant)
        assert result.usable, (name, result.verdict)
        assert face_distance(result.encoding, original.encoding) < 0.2, name


def test_rgba_photo_is_composited_on_white(faces_dir: Path) -> None:
    data = (faces_dir / "_hard" / "obama_rgba_32bit.png").read_bytes()
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "RGBA"
    result = analyse(data)
    assert result.usable, result.verdict


def test_exif_orientation_is_applied(faces_dir: Path) -> None:
    rgb = decode_image((faces_dir / "obama" / "2.jpg").read_bytes())
    sideways = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)  # what the sensor stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _save(sideways, "JPEG", exif=exif.tobytes(), quality=92)
    assert decode_image(data).shape[:2] == rgb.shape[:2]
    assert analyse(data).usable


def test_models_load_from_installed_packages_without_network(monkeypatch: pytest.MonkeyPatch, obama_rgb) -> None:
    """Fresh dlib and MediaPipe instances load and run with every socket connection refused."""
    import socket

    import face_recognition_models
    import mediapipe

    from jpki_remote.proofing.face.engine import FaceEngine
    from jpki_remote.proofing.face.mesh import FaceMesh

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for package in (face_recognition_models, mediapipe):
        assert "site-packages" in str(Path(package.__file__))
    engine = FaceEngine()
    engine.warm_up()
    assert len(engine.detect(obama_rgb).boxes) == 1
    assert len(FaceMesh().faces(np.ascontiguousarray(obama_rgb[:700, 150:760]))) == 1
