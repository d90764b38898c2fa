"""The face decision: a live capture against the card photo (surface AP) and the photo enrolled at issuance.

Decision rule (docs/face-verification.md §Decision):

1. the live capture must pass the live quality gate, otherwise the holder is asked to retry (reason live_quality);
2. the card photo is required and must pass the reference gate, otherwise the decision goes to the counter
   (card_photo_missing / reference_unusable);
3. the live face must match the card photo: distance ≤ threshold (no_match otherwise);
4. the enrolled photo, when one is given and usable, must not contradict: live-to-enrolled distance ≤ threshold too
   (no_match otherwise), and the two references must match each other (references_disagree otherwise: the card
   photo is not the person enrolled, which is a case for staff, not for the holder to retry).
An unusable enrolled photo does not block a decision on the card photo; it is reported in the comparisons.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from jpki_remote.proofing.face.analysis import FaceAnalysis, ImageInput, QualityVerdict, analyse
from jpki_remote.proofing.face.cache import EncodingCache, photo_digest
from jpki_remote.proofing.face.engine import FaceEngine, face_distance
from jpki_remote.proofing.face.quality import LIVE_PROFILE, REFERENCE_PROFILE, QualityProfile


class ReferenceKind(StrEnum):
    CARD_PHOTO = "card_photo"  # DF27 of the surface AP: greyscale JPEG 2000
    ENROLLED_PHOTO = "enrolled_photo"  # the photo taken or submitted at issuance (registry)


class DecisionReason(StrEnum):
    MATCH = "match"
    NO_MATCH = "no_match"
    LIVE_QUALITY = "live_quality"
    CARD_PHOTO_MISSING = "card_photo_missing"
    REFERENCE_UNUSABLE = "reference_unusable"
    REFERENCES_DISAGREE = "references_disagree"

    @property
    def retry_allowed(self) -> bool:
        """True when the holder can fix it at the terminal (a new capture); False sends the case to the counter."""
        return self in {DecisionReason.LIVE_QUALITY, DecisionReason.NO_MATCH}


@dataclass(frozen=True)
class Reference:
    """A reference face: the photo itself, or an encoding computed earlier. ``card_id`` enables the cache."""

    kind: ReferenceKind
    image: ImageInput | None = None
    encoding: np.ndarray | None = None
    card_id: str | None = None


@dataclass(frozen=True)
class ReferenceComparison:
    kind: ReferenceKind
    distance: float | None  # None when either face could not be encoded
    match: bool
    verdict: QualityVerdict
    cached: bool = False


@dataclass(frozen=True)
class FaceDecision:
    match: bool
    reason: DecisionReason
    threshold: float
    live: QualityVerdict
    comparisons: tuple[ReferenceComparison, ...]
    references_distance: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def distances(self) -> dict[str, float | None]:
        return {c.kind.value: c.distance for c in self.comparisons}

    def as_dict(self, language: str = "ja") -> dict[str, object]:
        return {
            "match": self.match,
            "reason": self.reason.value,
            "retry_allowed": self.reason.retry_allowed and not self.match,
            "threshold": self.threshold,
            "live": self.live.as_dict(language),
            "comparisons": [
                {
                    "kind": c.kind.value,
                    "distance": None if c.distance is None else round(c.distance, 4),
                    "match": c.match,
                    "cached": c.cached,
                    "quality": c.verdict.as_dict(language),
                }
                for c in self.comparisons
            ],
            "references_distance": None if self.references_distance is None else round(self.references_distance, 4),
        }


@dataclass(frozen=True)
class _Encoded:
    encoding: np.ndarray | None
    verdict: QualityVerdict
    cached: bool


class FaceVerifier:
    """Compares a live capture with the card photo and the enrolled photo at ``threshold`` (Euclidean distance)."""

    def __init__(
        self,
        threshold: float,
        *,
        engine: FaceEngine | None = None,
        cache: EncodingCache | None = None,
        live_profile: QualityProfile = LIVE_PROFILE,
        reference_profile: QualityProfile = REFERENCE_PROFILE,
    ) -> None:
        if not 0.0 < threshold < 2.0:
            raise ValueError("threshold must be between 0 and 2")
        self.threshold = threshold
        self.engine = engine or FaceEngine.shared()
        self.cache = cache if cache is not None else EncodingCache()
        self.live_profile = live_profile
        self.reference_profile = reference_profile

    def analyse_live(self, live: ImageInput) -> FaceAnalysis:
        return analyse(live, profile=self.live_profile, engine=self.engine)

    def encode_reference(self, reference: Reference) -> tuple[np.ndarray | None, QualityVerdict, bool]:
        """(encoding or None, verdict, came from cache) for one reference."""
        encoded = self._encode_reference(reference)
        return encoded.encoding, encoded.verdict, encoded.cached

    def verify(self, live: ImageInput | FaceAnalysis, references: Sequence[Reference]) -> FaceDecision:
        start = time.perf_counter()
        analysis = live if isinstance(live, FaceAnalysis) else self.analyse_live(live)
        timings = dict(analysis.timings_ms)
        kinds = [r.kind for r in references]
        if len(set(kinds)) != len(kinds):
            raise ValueError("at most one reference of each kind")
        if not analysis.usable:
            return FaceDecision(False, DecisionReason.LIVE_QUALITY, self.threshold, analysis.verdict, (), None, timings)

        encoded = {r.kind: self._encode_reference(r) for r in references}
        comparisons = tuple(self._compare(analysis.encoding, kind, e) for kind, e in encoded.items())
        by_kind = {c.kind: c for c in comparisons}
        card = by_kind.get(ReferenceKind.CARD_PHOTO)
        enrolled = by_kind.get(ReferenceKind.ENROLLED_PHOTO)
        references_distance = None
        if card is None:
            reason = DecisionReason.CARD_PHOTO_MISSING
        elif card.distance is None:
            reason = DecisionReason.REFERENCE_UNUSABLE
        elif not card.match or (enrolled is not None and enrolled.distance is not None and not enrolled.match):
            reason = DecisionReason.NO_MATCH
        else:
            reason = DecisionReason.MATCH
            card_encoding = encoded[ReferenceKind.CARD_PHOTO].encoding
            enrolled_e = encoded.get(ReferenceKind.ENROLLED_PHOTO)
            if enrolled_e is not None and enrolled_e.encoding is not None and card_encoding is not None:
                references_distance = face_distance(card_encoding, enrolled_e.encoding)
                if references_distance > self.threshold:
                    reason = DecisionReason.REFERENCES_DISAGREE
        timings["total"] = (time.perf_counter() - start) * 1000.0
        return FaceDecision(
            reason is DecisionReason.MATCH,
            reason,
            self.threshold,
            analysis.verdict,
            comparisons,
            references_distance,
            timings,
        )

    def _compare(self, live: np.ndarray | None, kind: ReferenceKind, encoded: _Encoded) -> ReferenceComparison:
        if live is None or encoded.encoding is None:
            return ReferenceComparison(kind, None, False, encoded.verdict, encoded.cached)
        distance = face_distance(live, encoded.encoding)
        return ReferenceComparison(kind, distance, distance <= self.threshold, encoded.verdict, encoded.cached)

    def _encode_reference(self, reference: Reference) -> _Encoded:
        if reference.encoding is not None:
            encoding = np.asarray(reference.encoding, dtype=np.float64)
            if encoding.shape != (128,) or not np.all(np.isfinite(encoding)):
                raise ValueError(f"a reference encoding has 128 finite values, got shape {encoding.shape}")
            return _Encoded(encoding, QualityVerdict((), 1), cached=False)
        if reference.image is None:
            raise ValueError(f"reference {reference.kind.value} has neither an image nor an encoding")
        key = None
        if reference.card_id is not None and reference.kind is ReferenceKind.CARD_PHOTO:
            key = (reference.card_id, photo_digest(reference.image))
            hit = self.cache.get(*key)
            if hit is not None:
                return _Encoded(hit, QualityVerdict((), 1), cached=True)
        analysis = analyse(reference.image, profile=self.reference_profile, engine=self.engine)
        encoding = analysis.encoding if analysis.usable else None
        if key is not None and encoding is not None:
            self.cache.put(*key, encoding)
        return _Encoded(encoding, analysis.verdict, cached=False)
