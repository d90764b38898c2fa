"""Liveness: an active challenge (blink, turn left, turn right in random order) checked on a short frame sequence.

    challenge = LivenessChallenge.new()
    result = check_liveness(challenge, frames, reference=card_encoding, threshold=settings.face_threshold)

What it stops and what it does not: docs/face-verification.md §Liveness.
"""

from jpki_remote.proofing.liveness.challenge import ChallengeStep, LivenessChallenge
from jpki_remote.proofing.liveness.checker import (
    DEFAULT_POLICY,
    LivenessPolicy,
    LivenessResult,
    ObservedAction,
    StepEvidence,
    check_liveness,
)
from jpki_remote.proofing.liveness.reasons import LivenessReason

__all__ = [
    "DEFAULT_POLICY",
    "ChallengeStep",
    "LivenessChallenge",
    "LivenessPolicy",
    "LivenessReason",
    "LivenessResult",
    "ObservedAction",
    "StepEvidence",
    "check_liveness",
]
