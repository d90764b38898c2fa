"""Face comparison against the card photo and the enrolled photo, with a quality gate (docs/face-verification.md).

Public interface::

    FaceVerifier(threshold).verify(live, [Reference(ReferenceKind.CARD_PHOTO, image=jp2, card_id=...),
                                          Reference(ReferenceKind.ENROLLED_PHOTO, image=jpeg)]) -> FaceDecision
    analyse(image, profile=LIVE_PROFILE) -> FaceAnalysis   # quality verdict + encoding of one image
    FaceIssue                                              # quality-gate codes with ja/en messages

Heavy dependencies (dlib, OpenCV, MediaPipe) load on first use, not on import.
"""

from jpki_remote.proofing.face.analysis import FaceAnalysis, QualityVerdict, analyse
from jpki_remote.proofing.face.cache import EncodingCache, photo_digest
from jpki_remote.proofing.face.engine import FaceBox, FaceEngine, FaceModelUnavailable, face_distance
from jpki_remote.proofing.face.issues import FaceIssue
from jpki_remote.proofing.face.quality import LIVE_PROFILE, REFERENCE_PROFILE, QualityProfile
from jpki_remote.proofing.face.verifier import (
    DecisionReason,
    FaceDecision,
    FaceVerifier,
    Reference,
    ReferenceComparison,
    ReferenceKind,
)

__all__ = [
    "LIVE_PROFILE",
    "REFERENCE_PROFILE",
    "DecisionReason",
    "EncodingCache",
    "FaceAnalysis",
    "FaceBox",
    "FaceDecision",
    "FaceEngine",
    "FaceIssue",
    "FaceModelUnavailable",
    "FaceVerifier",
    "QualityProfile",
    "QualityVerdict",
    "Reference",
    "ReferenceComparison",
    "ReferenceKind",
    "analyse",
    "face_distance",
    "photo_digest",
]
