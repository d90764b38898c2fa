"""Every quality-gate reason, each triggered by a real photo or by a photo edited the way the problem happens."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from jpki_remote.proofing.face import LIVE_PROFILE, FaceIssue, analyse
from jpki_remote.proofing.face.decode import decode_image
from proofing.liveness.sequences import close_eyes, landmarks_of


def _jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def test_every_real_photo_passes_the_live_gate(shared_photos: dict) -> None:
    failing = {name: p.live.verdict.issues for name, p in shared_photos.items() if not p.live.usable}
    assert failing == {}
    assert len(shared_photos) == 22


def test_every_card_photo_passes_the_reference_gate(shared_photos: dict) -> None:
    failing = {name: p.card.verdict.issues for name, p in shared_photos.items() if not p.card.usable}
    assert failing == {}


def test_no_face(obama_rgb: np.ndarray) -> None:
    suit_and_flag = obama_rgb[obama_rgb.shape[0] // 2 :, :]  # the lower half: suit, hands, flag
    assert analyse(_jpeg(suit_and_flag)).verdict.issues == (FaceIssue.NO_FACE,)


@pytest.mark.parametrize("photo", ["kit_with_rose.jpg", "longoria_cooper.jpg", "obama_and_biden.jpg", "two_people.jpg"])
def test_several_faces(faces_dir: Path, photo: str) -> None:
    verdict = analyse((faces_dir / "_several_faces" / photo).read_bytes()).verdict
    assert verdict.issues == (FaceIssue.SEVERAL_FACES,)
    assert verdict.faces_found >= 2


def test_face_too_small(obama_rgb: np.ndarray) -> None:
    shrunk = cv2.resize(obama_rgb, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)  # face about 70 px wide
    verdict = analyse(_jpeg(shrunk)).verdict
    assert FaceIssue.FACE_TOO_SMALL in verdict.issues
    assert verdict.measurements["face_pixels"] < LIVE_PROFILE.min_face_pixels


@pytest.mark.parametrize("photo", ["obama_partial_face.jpg", "obama_partial_face2.jpg"])
def test_face_cut_off(faces_dir: Path, photo: str) -> None:
    verdict = analyse((faces_dir / "_hard" / photo).read_bytes()).verdict
    assert verdict.issues == (FaceIssue.FACE_CUT_OFF,)


def test_face_cut_off_by_cropping(obama_rgb: np.ndarray) -> None:
    box = analyse(obama_rgb).box
    assert box is not None
    cropped = obama_rgb[:, box.left + box.width // 3 :]  # a third of the face outside the picture
    assert FaceIssue.FACE_CUT_OFF in analyse(_jpeg(cropped)).verdict.issues


def test_too_dark(obama_rgb: np.ndarray) -> None:
    dark = (obama_rgb * 0.2).astype(np.uint8)
    issues = analyse(_jpeg(dark)).verdict.issues
    assert issues[0] is FaceIssue.TOO_DARK, issues


def test_too_bright(obama_rgb: np.ndarray) -> None:
    washed_out = (255 - (255 - obama_rgb.astype(np.float64)) * 0.2).astype(np.uint8)
    issues = analyse(_jpeg(washed_out)).verdict.issues
    assert issues[0] is FaceIssue.TOO_BRIGHT, issues


def test_too_blurry(obama_rgb: np.ndarray) -> None:
    blurred = cv2.GaussianBlur(obama_rgb, (0, 0), sigmaX=7)  # face ~280 px: a badly focused or moving capture
    verdict = analyse(_jpeg(blurred)).verdict
    assert verdict.issues == (FaceIssue.TOO_BLURRY,), verdict
    assert verdict.measurements["sharpness"] < LIVE_PROFILE.min_sharpness


def test_eyes_closed(obama_rgb: np.ndarray) -> None:
    shut = close_eyes(obama_rgb, landmarks_of(obama_rgb))
    verdict = analyse(_jpeg(shut)).verdict
    assert verdict.issues == (FaceIssue.EYES_CLOSED,), verdict
    # the reference gate does not ask for open eyes (card photos are checked at issuance)
    from jpki_remote.proofing.face import REFERENCE_PROFILE

    assert analyse(_jpeg(shut), profile=REFERENCE_PROFILE).verdict.ok


def test_unreadable_and_wrong_format_from_real_files(faces_dir: Path) -> None:
    data = (faces_dir / "rose_leslie" / "1.jpg").read_bytes()
    assert analyse(data[: len(data) // 3]).verdict.issues == (FaceIssue.UNREADABLE_IMAGE,)
    assert analyse((faces_dir / "README.md").read_bytes()).verdict.issues == (FaceIssue.UNSUPPORTED_FORMAT,)


def test_every_issue_has_distinct_messages_in_both_languages() -> None:
    ja = [issue.message("ja") for issue in FaceIssue]
    en = [issue.message("en") for issue in FaceIssue]
    assert len(set(ja)) == len(ja) == len(set(en)) == len(en) == len(FaceIssue)
    assert all(any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text) for text in ja)
    assert all(text.isascii() for text in en)


def test_verdict_serialises_for_the_ui(obama_rgb: np.ndarray) -> None:
    shut_small = cv2.resize(obama_rgb, None, fx=0.25, fy=0.25)
    payload = analyse(_jpeg(shut_small)).verdict.as_dict("en")
    assert payload["ok"] is False
    assert payload["issues"][0]["code"] == "face_too_small"
    assert "closer" in payload["issues"][0]["message"]


def test_decoded_image_matches_pillow(faces_dir: Path) -> None:
    data = (faces_dir / "obama" / "4.jpg").read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert decode_image(data).shape == (image.height, image.width, 3)
