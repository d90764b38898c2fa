"""Liveness on frame sequences built from real photos (sequences.py): the asked steps in order pass; a replayed
still, a photo waved or tilted, a switch of person and the wrong order fail."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jpki_remote.config import Settings
from jpki_remote.proofing.face import FaceVerifier, Reference, ReferenceKind
from jpki_remote.proofing.face.card_photo import card_photo_from
from jpki_remote.proofing.face.decode import decode_image
from jpki_remote.proofing.face.engine import FaceEngine
from jpki_remote.proofing.liveness import ChallengeStep, LivenessChallenge, LivenessReason, check_liveness
from proofing.liveness.sequences import (
    concat,
    perform,
    portrait_frame,
    repeat,
    tilted_photo,
    to_jpeg,
    waved_photo,
)

LEFT, RIGHT, BLINK = ChallengeStep.TURN_LEFT, ChallengeStep.TURN_RIGHT, ChallengeStep.BLINK


@pytest.fixture(scope="module")
def threshold() -> float:
    return Settings().face_threshold


@pytest.fixture(scope="module")
def obama(faces_dir: Path) -> np.ndarray:
    return portrait_frame(decode_image((faces_dir / "obama" / "1.jpg").read_bytes()))


@pytest.fixture(scope="module")
def biden(faces_dir: Path) -> np.ndarray:
    return portrait_frame(decode_image((faces_dir / "biden" / "1.jpg").read_bytes()))


@pytest.fixture(scope="module")
def card_encoding(faces_dir: Path, threshold: float) -> np.ndarray:
    """The card photo (greyscale JP2) made from a different photo of the same person."""
    rgb = decode_image((faces_dir / "obama" / "3.jpg").read_bytes())
    card = card_photo_from(rgb, FaceEngine.shared().detect(rgb).boxes[0])
    encoding, verdict, _ = FaceVerifier(threshold).encode_reference(Reference(ReferenceKind.CARD_PHOTO, image=card))
    assert encoding is not None, verdict
    return encoding


def test_challenge_order_is_random_and_complete() -> None:
    orders = Counter(LivenessChallenge.new().steps for _ in range(600))
    assert set(orders) == {
        (LEFT, RIGHT, BLINK), (LEFT, BLINK, RIGHT), (RIGHT, LEFT, BLINK),
        (RIGHT, BLINK, LEFT), (BLINK, LEFT, RIGHT), (BLINK, RIGHT, LEFT),
    }  # fmt: skip
    assert min(orders.values()) > 50  # each of the 6 orders ~100 times
    challenge = LivenessChallenge.new()
    assert LivenessChallenge.from_dict(challenge.to_dict()) == challenge
    assert all(step.instruction_ja and step.instruction_en for step in ChallengeStep)


@pytest.mark.parametrize(
    "steps",
    [(LEFT, BLINK, RIGHT), (BLINK, RIGHT, LEFT)],
    ids=["left-blink-right", "blink-right-left"],
)
def test_live_sequence_passes(obama: np.ndarray, card_encoding: np.ndarray, threshold: float, steps: tuple) -> None:
    frames = perform(obama, [s.value for s in steps])
    result = check_liveness(
        LivenessChallenge(steps), [to_jpeg(f) for f in frames], reference=card_encoding, threshold=threshold
    )
    assert result.passed, result.as_dict("en")
    assert [s.step for s in result.steps] == list(steps) and all(s.passed for s in result.steps)
    firsts = [s.first_frame for s in result.steps]
    assert firsts == sorted(firsts)
    turn = next(s for s in result.steps if s.step is LEFT)
    assert turn.value > 0 and turn.parallax > 0  # nose moved towards the image's right, off the outline's plane
    assert result.identity_max_distance < threshold and result.reference_distance <= threshold


def test_repeated_still_frame_fails(obama: np.ndarray, threshold: float) -> None:
    result = check_liveness(LivenessChallenge((BLINK, LEFT, RIGHT)), repeat(obama, 10), threshold=threshold)
    assert not result.passed
    assert LivenessReason.NO_MOVEMENT in result.reasons


def test_photo_moved_rigidly_fails(obama: np.ndarray, threshold: float) -> None:
    result = check_liveness(LivenessChallenge((LEFT, BLINK, RIGHT)), waved_photo(obama), threshold=threshold)
    assert not result.passed
    assert LivenessReason.PLANAR_MOTION in result.reasons and LivenessReason.STEP_MISSING in result.reasons


def test_photo_tilted_to_fake_turns_fails(obama: np.ndarray, threshold: float) -> None:
    frames = tilted_photo(obama, [0, 0, 0.05, 0.1, 0.05, 0, 0, -0.05, -0.1, -0.05, 0, 0])
    result = check_liveness(LivenessChallenge((LEFT, RIGHT)), frames, threshold=threshold)
    assert not result.passed
    assert LivenessReason.PLANAR_MOTION in result.reasons


def test_switch_of_person_fails(obama: np.ndarray, biden: np.ndarray, threshold: float) -> None:
    frames = concat(perform(obama, ["turn_left"], seed=1), perform(biden, ["blink", "turn_right"], seed=2))
    result = check_liveness(LivenessChallenge((LEFT, BLINK, RIGHT)), frames, threshold=threshold)
    assert not result.passed
    assert LivenessReason.IDENTITY_CHANGED in result.reasons
    assert result.identity_max_distance > threshold


def test_other_person_than_the_card_fails(biden: np.ndarray, card_encoding: np.ndarray, threshold: float) -> None:
    """A live person doing everything right, but not the card's holder."""
    frames = perform(biden, ["turn_left", "turn_right"], seed=3)
    result = check_liveness(LivenessChallenge((LEFT, RIGHT)), frames, reference=card_encoding, threshold=threshold)
    assert not result.passed and result.reasons == (LivenessReason.REFERENCE_MISMATCH,), result.as_dict("en")
    assert result.reference_distance > threshold


def test_wrong_order_fails(obama: np.ndarray, threshold: float) -> None:
    frames = perform(obama, ["turn_right", "blink", "turn_left"])
    result = check_liveness(LivenessChallenge((LEFT, BLINK, RIGHT)), frames, threshold=threshold)
    assert not result.passed and LivenessReason.WRONG_ORDER in result.reasons


def test_missing_step_fails(obama: np.ndarray, threshold: float) -> None:
    frames = perform(obama, ["turn_left", "blink"])  # stops before the last step
    result = check_liveness(LivenessChallenge((LEFT, BLINK, RIGHT)), frames, threshold=threshold)
    assert not result.passed and result.reasons == (LivenessReason.STEP_MISSING,)
    assert [s.passed for s in result.steps] == [True, True, False]


def test_unrequested_turn_before_the_asked_blink_is_wrong_order(obama: np.ndarray, threshold: float) -> None:
    frames = perform(obama, ["turn_left", "turn_right"])
    result = check_liveness(LivenessChallenge((LEFT, BLINK, RIGHT)), frames, threshold=threshold)
    assert not result.passed and result.reasons == (LivenessReason.WRONG_ORDER,)


def test_bad_inputs_give_reasons_not_exceptions(obama: np.ndarray, faces_dir: Path, threshold: float) -> None:
    challenge = LivenessChallenge((BLINK,))
    assert check_liveness(challenge, [obama] * 3, threshold=threshold).reasons == (LivenessReason.TOO_FEW_FRAMES,)
    assert check_liveness(challenge, [obama] * 91, threshold=threshold).reasons == (LivenessReason.TOO_MANY_FRAMES,)
    broken = [to_jpeg(obama)] * 6 + [b"\x00garbage"]
    assert check_liveness(challenge, broken, threshold=threshold).reasons == (LivenessReason.UNREADABLE_FRAME,)
    empty = obama[obama.shape[0] * 3 // 4 :]  # shoulders only
    assert LivenessReason.FACE_MISSING in check_liveness(challenge, [empty] * 8, threshold=threshold).reasons
    group = (faces_dir / "_several_faces" / "two_people.jpg").read_bytes()
    assert LivenessReason.SEVERAL_FACES in check_liveness(challenge, [group] * 6, threshold=threshold).reasons
    old = LivenessChallenge((BLINK,), issued_at=0.0)
    assert check_liveness(old, [obama] * 8, threshold=threshold).reasons == (LivenessReason.CHALLENGE_EXPIRED,)
