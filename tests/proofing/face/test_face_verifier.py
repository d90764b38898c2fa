"""Same-person pairs accepted and different-person pairs rejected at the configured threshold; the decision rule
across card photo and enrolled photo; the per-card encoding cache; no image kept or logged."""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFile

from jpki_remote.proofing.face import (
    DecisionReason,
    EncodingCache,
    FaceAnalysis,
    FaceVerifier,
    Reference,
    ReferenceKind,
    face_distance,
)

CARD = ReferenceKind.CARD_PHOTO
ENROLLED = ReferenceKind.ENROLLED_PHOTO


def _pairs(shared_photos: dict, same: bool) -> list[tuple]:
    return [(a, b) for a, b in itertools.combinations(shared_photos.values(), 2) if (a.person == b.person) is same]


def test_threshold_is_stricter_than_the_library_default(threshold: float) -> None:
    assert 0.3 < threshold < 0.6


def test_same_person_pairs_are_accepted(shared_photos: dict, threshold: float) -> None:
    pairs = _pairs(shared_photos, same=True)
    assert len(pairs) == 20
    rejected = [
        (a.name, b.name, d) for a, b in pairs if (d := face_distance(a.live.encoding, b.live.encoding)) > threshold
    ]
    assert rejected == []


def test_different_person_pairs_are_rejected(shared_photos: dict, threshold: float) -> None:
    pairs = _pairs(shared_photos, same=False)
    assert len(pairs) == 211
    accepted = [
        (a.name, b.name, d) for a, b in pairs if (d := face_distance(a.live.encoding, b.live.encoding)) <= threshold
    ]
    assert accepted == []


def test_card_photo_condition(shared_photos: dict, threshold: float) -> None:
    """Card photo (greyscale JP2 at card resolution) of one photo against the colour live photo of another."""
    genuine, impostor = [], []
    for a, b in itertools.permutations(shared_photos.values(), 2):
        distance = face_distance(a.card.encoding, b.live.encoding)
        (genuine if a.person == b.person else impostor).append(distance)
    assert len(genuine) == 40 and len(impostor) == 422
    assert not [d for d in impostor if d <= threshold]
    assert np.mean(np.array(genuine) > threshold) <= 0.03  # the FNMR goal per attempt


def test_encoding_matches_the_face_recognition_library(shared_photos: dict) -> None:
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        import face_recognition
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    from jpki_remote.proofing.face.decode import decode_image

    photo = shared_photos["obama/2.jpg"]
    box = photo.live.box
    rgb = decode_image(photo.data)
    theirs = face_recognition.face_encodings(rgb, [(box.top, box.right - 1, box.bottom - 1, box.left)])[0]
    assert face_distance(theirs, photo.live.encoding) < 1e-6


@pytest.fixture(scope="module")
def verifier(threshold: float) -> FaceVerifier:
    return FaceVerifier(threshold)


def test_holder_matches_card_and_enrolled_photo(verifier: FaceVerifier, shared_photos: dict) -> None:
    card = shared_photos["obama/1.jpg"]
    decision = verifier.verify(
        shared_photos["obama/2.jpg"].data,
        [Reference(CARD, image=card.card_photo, card_id="card-1"), Reference(ENROLLED, image=card.data)],
    )
    assert decision.match and decision.reason is DecisionReason.MATCH, decision
    assert set(decision.distances) == {"card_photo", "enrolled_photo"}
    assert all(d is not None and d <= verifier.threshold for d in decision.distances.values())
    assert decision.references_distance is not None and decision.references_distance < 0.3


def test_other_person_with_a_stolen_card_is_rejected(verifier: FaceVerifier, shared_photos: dict) -> None:
    card = shared_photos["obama/1.jpg"]
    decision = verifier.verify(
        shared_photos["biden/2.jpg"].data,
        [Reference(CARD, image=card.card_photo), Reference(ENROLLED, image=card.data)],
    )
    assert not decision.match and decision.reason is DecisionReason.NO_MATCH
    assert decision.reason.retry_allowed


def test_enrolled_photo_contradicting_blocks_the_match(verifier: FaceVerifier, shared_photos: dict) -> None:
    decision = verifier.verify(
        shared_photos["obama/2.jpg"].live,
        [
            Reference(CARD, encoding=shared_photos["obama/1.jpg"].card.encoding),
            Reference(ENROLLED, encoding=shared_photos["biden/1.jpg"].live.encoding),
        ],
    )
    assert not decision.match and decision.reason is DecisionReason.NO_MATCH
    assert decision.distances["card_photo"] <= verifier.threshold < decision.distances["enrolled_photo"]


def test_references_that_disagree_go_to_the_counter(verifier: FaceVerifier, shared_photos: dict) -> None:
    live = shared_photos["obama/2.jpg"].live
    direction = np.random.default_rng(4).normal(size=128)
    direction /= np.linalg.norm(direction)
    step = verifier.threshold * 0.9
    decision = verifier.verify(
        live,
        [
            Reference(CARD, encoding=live.encoding + step * direction),
            Reference(ENROLLED, encoding=live.encoding - step * direction),
        ],
    )
    assert decision.reason is DecisionReason.REFERENCES_DISAGREE and not decision.match
    assert not decision.reason.retry_allowed


def test_poor_live_capture_asks_for_a_retry(verifier: FaceVerifier, faces_dir: Path, shared_photos: dict) -> None:
    decision = verifier.verify(
        (faces_dir / "_several_faces" / "two_people.jpg").read_bytes(),
        [Reference(CARD, image=shared_photos["obama/1.jpg"].card_photo)],
    )
    assert decision.reason is DecisionReason.LIVE_QUALITY and decision.comparisons == ()
    assert decision.live.issues[0].value == "several_faces"


def test_unusable_or_missing_card_photo(verifier: FaceVerifier, faces_dir: Path, shared_photos: dict) -> None:
    live = shared_photos["obama/2.jpg"].live
    unusable = verifier.verify(live, [Reference(CARD, image=b"\xff\xd8\xff broken")])
    assert unusable.reason is DecisionReason.REFERENCE_UNUSABLE and not unusable.reason.retry_allowed
    assert unusable.comparisons[0].verdict.issues[0].value == "unreadable_image"
    missing = verifier.verify(live, [Reference(ENROLLED, image=shared_photos["obama/1.jpg"].data)])
    assert missing.reason is DecisionReason.CARD_PHOTO_MISSING and not missing.match


def test_card_photo_encoding_is_cached_per_card_and_photo(threshold: float, shared_photos: dict) -> None:
    cache = EncodingCache(max_entries=2)
    verifier = FaceVerifier(threshold, cache=cache)
    live = shared_photos["obama/2.jpg"].live
    card_photo = shared_photos["obama/1.jpg"].card_photo
    first = verifier.verify(live, [Reference(CARD, image=card_photo, card_id="card-7")])
    second = verifier.verify(live, [Reference(CARD, image=card_photo, card_id="card-7")])
    assert not first.comparisons[0].cached and second.comparisons[0].cached
    assert first.distances == second.distances
    other_photo = shared_photos["obama/3.jpg"].card_photo  # re-issued card, new photo: never the stale encoding
    third = verifier.verify(live, [Reference(CARD, image=other_photo, card_id="card-7")])
    assert not third.comparisons[0].cached and third.distances != first.distances
    assert len(cache) == 2
    stored = list(cache._entries.values())
    assert all(isinstance(v, np.ndarray) and v.shape == (128,) for v in stored)  # encodings only, no pixels
    assert cache.forget_card("card-7") == 2 and len(cache) == 0


def test_nothing_is_written_or_logged(
    verifier: FaceVerifier, shared_photos: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    result = verifier.verify(
        shared_photos["obama/2.jpg"].data, [Reference(CARD, image=shared_photos["obama/1.jpg"].card_photo)]
    )
    assert result.match
    assert os.listdir(tmp_path) == []
    assert all(len(record.getMessage()) < 300 for record in caplog.records)
    analysis = verifier.analyse_live(shared_photos["obama/2.jpg"].data)
    assert isinstance(analysis, FaceAnalysis)
    kept = [v for v in vars(analysis).values() if isinstance(v, np.ndarray)]
    assert [k.shape for k in kept] == [(128,)]  # the encoding is the only array kept
