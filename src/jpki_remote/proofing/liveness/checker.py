"""check_liveness: did the person in front of the camera perform the asked steps, in order, as a 3-D head, and stay
the same person (and the card's person) throughout?

Per frame (scaled to ≤ 640 px): MediaPipe face mesh → eye aspect ratio (EAR), yaw ratio (nose between the cheek
contours), nose parallax against the first frame's outline plane; grey-level change. Frames are labelled
closed-eyes (EAR below ``closed_ratio`` × the holder's open-eye EAR) or turned left/right (yaw change beyond
``min_yaw``); runs of equal labels are the observed actions. A blink counts when the eyes were open before and after;
a turn counts only with nose parallax in its direction (a flat picture tilted or moved never produces it). The asked
steps must appear in order; an unrequested turn before the steps are complete fails the order, a spontaneous blink
does not. dlib encodings of up to ``max_encoded`` frames must all lie within ``threshold`` of each other, and with a
reference (the card photo's encoding) at least one frontal frame must match it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from jpki_remote.proofing.face.decode import ImageRejected, as_rgb_array
from jpki_remote.proofing.face.engine import FaceEngine, face_distance
from jpki_remote.proofing.face.mesh import FaceMesh, MeshFace
from jpki_remote.proofing.liveness.challenge import ChallengeStep, LivenessChallenge
from jpki_remote.proofing.liveness.motion import frame_change, nose_parallax, small_grey
from jpki_remote.proofing.liveness.reasons import LivenessReason

FrameInput = bytes | bytearray | memoryview | np.ndarray
FRAME_SIZE = 640


@dataclass(frozen=True)
class LivenessPolicy:
    min_frames: int = 6
    max_frames: int = 90
    max_missing_fraction: float = 0.2  # frames without a face
    closed_ratio: float = 0.6  # EAR below this share of the open-eye EAR: eyes shut
    reopen_ratio: float = 0.85  # EAR above this share: eyes open again
    min_yaw: float = 0.05  # change of the yaw ratio for a turn
    min_parallax: float = 0.016  # nose parallax (face widths) a turn must show
    min_change: float = 1.0  # mean grey-level change; below it in every frame: a still picture
    max_encoded: int = 8  # frames encoded for the identity checks (always the first, the last, each action)


DEFAULT_POLICY = LivenessPolicy()


@dataclass(frozen=True)
class StepEvidence:
    step: ChallengeStep
    passed: bool
    first_frame: int | None = None
    last_frame: int | None = None
    value: float | None = None  # lowest EAR for a blink, yaw change for a turn
    parallax: float | None = None  # turns only
    note: str = ""


@dataclass(frozen=True)
class ObservedAction:
    action: ChallengeStep
    first_frame: int
    last_frame: int
    value: float
    parallax: float | None
    valid: bool
    note: str = ""


@dataclass(frozen=True)
class LivenessResult:
    passed: bool
    reasons: tuple[LivenessReason, ...]
    steps: tuple[StepEvidence, ...]
    observed: tuple[ObservedAction, ...] = ()
    frames: int = 0
    identity_max_distance: float | None = None
    reference_distance: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self, language: str = "ja") -> dict[str, object]:
        return {
            "passed": self.passed,
            "reasons": [{"code": r.value, "message": r.message(language)} for r in self.reasons],
            "steps": [
                {
                    "step": s.step.value,
                    "passed": s.passed,
                    "frames": None if s.first_frame is None else [s.first_frame, s.last_frame],
                    "value": None if s.value is None else round(s.value, 4),
                    "parallax": None if s.parallax is None else round(s.parallax, 4),
                    "note": s.note,
                }
                for s in self.steps
            ],
            "frames": self.frames,
            "identity_max_distance": _r(self.identity_max_distance),
            "reference_distance": _r(self.reference_distance),
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass
class _Frame:
    index: int
    rgb: np.ndarray
    grey: np.ndarray
    face: MeshFace | None
    faces: int


def check_liveness(
    challenge: LivenessChallenge,
    frames: Sequence[FrameInput],
    *,
    reference: np.ndarray | None = None,
    threshold: float | None = None,
    policy: LivenessPolicy = DEFAULT_POLICY,
    mesh: FaceMesh | None = None,
    engine: FaceEngine | None = None,
    now: float | None = None,
) -> LivenessResult:
    """Judge ``frames`` (camera frames in time order, un-mirrored) against ``challenge``. Never raises for bad frames.

    ``reference``: the card photo's encoding (FaceVerifier.encode_reference); ``threshold``: the face threshold
    (default: Settings.face_threshold) used for identity across frames and against the reference.
    """
    start = time.perf_counter()
    if threshold is None:
        from jpki_remote.config import load_settings

        threshold = load_settings().face_threshold
    unmet = tuple(StepEvidence(s, False) for s in challenge.steps)
    if challenge.expired(now):
        return LivenessResult(False, (LivenessReason.CHALLENGE_EXPIRED,), unmet)
    if len(frames) < policy.min_frames:
        return LivenessResult(False, (LivenessReason.TOO_FEW_FRAMES,), unmet, frames=len(frames))
    if len(frames) > policy.max_frames:
        return LivenessResult(False, (LivenessReason.TOO_MANY_FRAMES,), unmet, frames=len(frames))

    mesh = mesh or FaceMesh.shared()
    analysed: list[_Frame] = []
    for index, raw in enumerate(frames):
        try:
            rgb = _frame_size(as_rgb_array(raw))
        except ImageRejected:
            return LivenessResult(False, (LivenessReason.UNREADABLE_FRAME,), unmet, frames=len(frames))
        found = mesh.faces(rgb)
        analysed.append(_Frame(index, rgb, small_grey(rgb), found[0] if len(found) == 1 else None, len(found)))
    timings = {"landmarks": (time.perf_counter() - start) * 1000.0}

    reasons: list[LivenessReason] = []
    if any(f.faces > 1 for f in analysed):
        reasons.append(LivenessReason.SEVERAL_FACES)
    with_face = [f for f in analysed if f.face is not None]
    missing = len(analysed) - len(with_face)
    if missing > policy.max_missing_fraction * len(analysed) or len(with_face) < 2:
        reasons.append(LivenessReason.FACE_MISSING)
    if reasons:
        return LivenessResult(False, tuple(reasons), unmet, frames=len(frames), timings_ms=timings)

    first = with_face[0]
    assert first.face is not None
    changes = [frame_change(first.grey, f.grey) for f in analysed[1:]]
    observed = _observe(with_face, policy)
    steps, order_ok = _match(challenge.steps, observed)

    if max(changes, default=0.0) < policy.min_change:
        reasons.append(LivenessReason.NO_MOVEMENT)
    elif (
        not any(a.valid and a.action is ChallengeStep.BLINK for a in observed)
        and all(abs(nose_parallax(first.face, f.face)) < policy.min_parallax for f in with_face if f.face is not None)
    ) or any(not a.valid and a.action is not ChallengeStep.BLINK for a in observed):
        reasons.append(LivenessReason.PLANAR_MOTION)
    if not order_ok:
        reasons.append(LivenessReason.WRONG_ORDER)
    elif not all(s.passed for s in steps):
        reasons.append(LivenessReason.STEP_MISSING)

    start = time.perf_counter()
    identity_max, reference_best, identity_reasons = _identity(
        with_face, observed, reference, threshold, policy, engine
    )
    timings["identity"] = (time.perf_counter() - start) * 1000.0
    reasons.extend(identity_reasons)
    return LivenessResult(
        not reasons,
        tuple(dict.fromkeys(reasons)),
        steps,
        tuple(observed),
        len(frames),
        identity_max,
        reference_best,
        timings,
    )


def _frame_size(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    if max(height, width) <= FRAME_SIZE:
        return rgb
    import cv2

    scale = FRAME_SIZE / max(height, width)
    return cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def _observe(frames: Sequence[_Frame], policy: LivenessPolicy) -> list[ObservedAction]:
    """Runs of closed-eye or turned frames, in time order, each judged valid or not."""
    faces = [f.face for f in frames]
    assert all(face is not None for face in faces)
    ears = np.array([face.eye_aspect_ratio for face in faces if face is not None])
    yaws = np.array([face.yaw_ratio for face in faces if face is not None])
    neutral_yaw = float(yaws[0])
    yaw_change = yaws - neutral_yaw
    turned = np.abs(yaw_change) >= policy.min_yaw
    open_ear = float(np.percentile(ears[~turned] if np.any(~turned) else ears, 75))
    labels: list[ChallengeStep | None] = []
    for i in range(len(frames)):
        if yaw_change[i] >= policy.min_yaw:
            labels.append(ChallengeStep.TURN_LEFT)
        elif yaw_change[i] <= -policy.min_yaw:
            labels.append(ChallengeStep.TURN_RIGHT)
        elif ears[i] < policy.closed_ratio * open_ear:
            labels.append(ChallengeStep.BLINK)
        else:
            labels.append(None)
    actions: list[ObservedAction] = []
    i = 0
    while i < len(labels):
        label = labels[i]
        if label is None:
            i += 1
            continue
        j = i
        while j + 1 < len(labels) and labels[j + 1] is label:
            j += 1
        run = range(i, j + 1)
        if label is ChallengeStep.BLINK:
            reopened_before = any(ears[k] >= policy.reopen_ratio * open_ear for k in range(0, i) if labels[k] is None)
            reopened_after = any(
                ears[k] >= policy.reopen_ratio * open_ear for k in range(j + 1, len(labels)) if labels[k] is None
            )
            valid = reopened_before and reopened_after
            note = "" if valid else "eyes not seen open before and after"
            value = float(min(ears[k] for k in run))
            actions.append(ObservedAction(label, frames[i].index, frames[j].index, value, None, valid, note))
        else:
            peak = max(run, key=lambda k: abs(yaw_change[k]))
            first_face, peak_face = faces[0], faces[peak]
            assert first_face is not None and peak_face is not None
            parallax = nose_parallax(first_face, peak_face)
            sign = 1.0 if label is ChallengeStep.TURN_LEFT else -1.0
            valid = sign * parallax >= policy.min_parallax
            note = "" if valid else "no 3-D parallax: a flat picture tilted or moved"
            actions.append(
                ObservedAction(label, frames[i].index, frames[j].index, float(yaw_change[peak]), parallax, valid, note)
            )
        i = j + 1
    return actions


def _match(asked: Sequence[ChallengeStep], observed: Sequence[ObservedAction]) -> tuple[tuple[StepEvidence, ...], bool]:
    """Match valid observed actions to the asked steps in order. Returns (evidence per asked step, order kept)."""
    evidence: list[StepEvidence] = []
    position = 0
    order_ok = True
    for action in observed:
        if not action.valid:
            continue
        if position < len(asked) and action.action is asked[position]:
            evidence.append(
                StepEvidence(action.action, True, action.first_frame, action.last_frame, action.value, action.parallax)
            )
            position += 1
        elif action.action is ChallengeStep.BLINK:
            continue  # a spontaneous blink is normal
        elif position < len(asked):
            order_ok = False
            break
    for step in asked[len(evidence) :]:
        evidence.append(StepEvidence(step, False, note="not performed in the asked order" if not order_ok else ""))
    return tuple(evidence), order_ok


_LIVENESS_ENGINE: FaceEngine | None = None


def _liveness_engine() -> FaceEngine:
    global _LIVENESS_ENGINE
    if _LIVENESS_ENGINE is None:
        _LIVENESS_ENGINE = FaceEngine(detection_size=FRAME_SIZE, upsample=0)
    return _LIVENESS_ENGINE


def _identity(
    frames: Sequence[_Frame],
    observed: Sequence[ObservedAction],
    reference: np.ndarray | None,
    threshold: float,
    policy: LivenessPolicy,
    engine: FaceEngine | None,
) -> tuple[float | None, float | None, list[LivenessReason]]:
    """Encode a spread of frames (always the first, the last and each action's frames); all must be one person, and
    with a reference at least one frame outside any action must match it."""
    engine = engine or _liveness_engine()
    action_frames = {a.first_frame for a in observed} | {a.last_frame for a in observed}
    chosen = {frames[0].index, frames[-1].index} | action_frames
    by_index = {f.index: f for f in frames}
    spread = np.linspace(0, len(frames) - 1, num=min(len(frames), policy.max_encoded)).round().astype(int)
    for k in spread:
        if len(chosen) >= policy.max_encoded:
            break
        chosen.add(frames[int(k)].index)
    encodings: dict[int, np.ndarray] = {}
    for index in sorted(chosen)[: max(policy.max_encoded, len(action_frames) + 2)]:
        frame = by_index.get(index)
        if frame is None:
            continue
        boxes = engine.detect(frame.rgb).boxes
        if not boxes:
            continue
        encodings[index] = engine.encode(frame.rgb, max(boxes, key=lambda b: b.width))
    reasons: list[LivenessReason] = []
    if len(encodings) < 2:
        return None, None, [LivenessReason.FACE_MISSING]
    values = list(encodings.values())
    identity_max = max(face_distance(a, b) for i, a in enumerate(values) for b in values[i + 1 :])
    if identity_max > threshold:
        reasons.append(LivenessReason.IDENTITY_CHANGED)
    reference_best = None
    if reference is not None:
        in_action = {k for a in observed for k in range(a.first_frame, a.last_frame + 1)}
        frontal = [e for i, e in encodings.items() if i not in in_action] or values
        reference_best = min(face_distance(reference, e) for e in frontal)
        if reference_best > threshold:
            reasons.append(LivenessReason.REFERENCE_MISMATCH)
    return identity_max, reference_best, reasons
