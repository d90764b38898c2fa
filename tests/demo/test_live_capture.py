"""The synthetic live capture: frames a liveness check accepts in the asked order, refused otherwise; odd input
gets a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jpki_remote.demo.live_capture import CaptureError, capture, close_eyes, landmarks_of, portrait_frame, turn_head
from jpki_remote.proofing.face.decode import decode_image
from jpki_remote.proofing.liveness import LivenessChallenge, check_liveness


@pytest.fixture(scope="module")
def obama(faces_dir: Path) -> bytes:
    return (faces_dir / "obama" / "1.jpg").read_bytes()


def test_capture_passes_liveness_in_the_asked_order_only(obama: bytes) -> None:
    challenge = LivenessChallenge.new()
    steps = [s.value for s in challenge.steps]
    frames = capture(obama, steps)
    assert len(frames) == 2 + 3 * 4 and all(f[:2] == b"\xff\xd8" for f in frames)  # JPEG frames
    assert len(set(frames)) == len(frames)  # camera noise: no two frames alike
    assert check_liveness(challenge, frames).passed
    backwards = capture(obama, list(reversed(steps)))
    assert not check_liveness(challenge, backwards).passed


def test_poses_change_the_face(obama: bytes) -> None:
    frame = portrait_frame(decode_image(obama))
    marks = landmarks_of(frame)
    shut = close_eyes(frame, marks)
    eyes = slice(int(marks[36:48, 1].min()) - 3, int(marks[36:48, 1].max()) + 3)
    assert np.abs(shut[eyes].astype(int) - frame[eyes]).mean() > 2  # the eye region is painted over
    assert np.abs(shut[-40:].astype(int) - frame[-40:]).mean() < 0.5  # the rest is untouched
    turned = turn_head(frame, marks, 0.11)
    assert landmarks_of(turned)[30, 0] > marks[30, 0] + 3  # the nose tip moved to the image's right


def test_bad_input_is_a_clear_error(faces_dir: Path, obama: bytes) -> None:
    with pytest.raises(CaptureError):
        capture(b"not an image", ["blink"])
    with pytest.raises(CaptureError, match="one face"):
        capture((faces_dir / "_several_faces" / "two_people.jpg").read_bytes(), ["blink"])
    with pytest.raises(CaptureError, match="unknown"):
        capture(obama, ["wave"])
