"""The active challenge: blink, turn the head left, turn the head right — in an order drawn with ``secrets``.

Directions are the holder's own: "turn left" means the holder turns to their left, which in an un-mirrored camera
frame moves the nose towards the image's right. Terminals must send raw (un-mirrored) frames even when the preview
on screen is mirrored.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

DEFAULT_VALID_SECONDS = 120


class ChallengeStep(StrEnum):
    BLINK = "blink"
    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"

    @property
    def instruction_ja(self) -> str:
        return _INSTRUCTIONS[self][0]

    @property
    def instruction_en(self) -> str:
        return _INSTRUCTIONS[self][1]


_INSTRUCTIONS = {
    ChallengeStep.BLINK: ("ゆっくりまばたきをしてください。", "Blink slowly."),
    ChallengeStep.TURN_LEFT: (
        "顔をゆっくり左に向けて、正面に戻してください。",
        "Turn your head to your left, then back.",
    ),
    ChallengeStep.TURN_RIGHT: (
        "顔をゆっくり右に向けて、正面に戻してください。",
        "Turn your head to your right, then back.",
    ),
}


@dataclass(frozen=True)
class LivenessChallenge:
    steps: tuple[ChallengeStep, ...]
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    issued_at: float = field(default_factory=time.time)
    valid_seconds: int = DEFAULT_VALID_SECONDS

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a challenge has at least one step")
        if len(set(self.steps)) != len(self.steps):
            raise ValueError("each step appears once")

    @classmethod
    def new(
        cls, steps: Sequence[ChallengeStep] = tuple(ChallengeStep), *, valid_seconds: int = DEFAULT_VALID_SECONDS
    ) -> LivenessChallenge:
        """The given steps in a uniformly random order (Fisher–Yates with ``secrets.randbelow``)."""
        order = list(steps)
        for i in range(len(order) - 1, 0, -1):
            j = secrets.randbelow(i + 1)
            order[i], order[j] = order[j], order[i]
        return cls(tuple(order), valid_seconds=valid_seconds)

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) > self.issued_at + self.valid_seconds

    def to_dict(self) -> dict[str, object]:
        return {
            "steps": [s.value for s in self.steps],
            "nonce": self.nonce,
            "issued_at": self.issued_at,
            "valid_seconds": self.valid_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LivenessChallenge:
        steps = data.get("steps")
        if not isinstance(steps, list):
            raise ValueError("steps must be a list")
        return cls(
            tuple(ChallengeStep(str(s)) for s in steps),
            str(data["nonce"]),
            float(data["issued_at"]),  # type: ignore[arg-type]
            int(data.get("valid_seconds", DEFAULT_VALID_SECONDS)),  # type: ignore[call-overload]
        )
