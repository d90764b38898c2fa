"""One image in, one verdict out: decode → detect → quality (face mesh for the eyes) → encoding, with timings.

Never raises for bad input: an unreadable file, no face or a blurred face all come back as a QualityVerdict with
FaceIssue codes. The image itself is not kept: the result holds the encoding (128 floats), the face box and the
measurements only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from jpki_remote.proofing.face.decode import DEFAULT_MAX_PIXELS, ImageRejected, as_rgb_array
from jpki_remote.proofing.face.engine import FaceBox, FaceEngine
from jpki_remote.proofing.face.issues import FaceIssue
from jpki_remote.proofing.face.mesh import FaceMesh
from jpki_remote.proofing.face.quality import (
    LIVE_PROFILE,
    QualityProfile,
    eye_aspect_ratio_in_box,
    luminance,
    measure_face,
)

ImageInput = bytes | bytearray | memoryview | np.ndarray


@dataclass(frozen=True)
class QualityVerdict:
    """The quality gate's answer for one image: ``ok`` when ``issues`` is empty."""

    issues: tuple[FaceIssue, ...]
    faces_found: int
    measurements: dict[str, float] = field(default_factory=dict)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.issues

    def as_dict(self, language: str = "ja") -> dict[str, object]:
        return {
            "ok": self.ok,
            "issues": [{"code": issue.value, "message": issue.message(language)} for issue in self.issues],
            "faces_found": self.faces_found,
            "measurements": dict(self.measurements),
        }


@dataclass(frozen=True)
class FaceAnalysis:
    verdict: QualityVerdict
    encoding: np.ndarray | None  # set when exactly one face was found, even if the quality gate failed
    box: FaceBox | None
    timings_ms: dict[str, float]

    @property
    def usable(self) -> bool:
        return self.verdict.ok and self.encoding is not None


def analyse(
    image: ImageInput,
    *,
    profile: QualityProfile = LIVE_PROFILE,
    engine: FaceEngine | None = None,
    mesh: FaceMesh | None = None,
    encode: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FaceAnalysis:
    """Decode, detect, judge and (with ``encode``) encode the one face in ``image``."""
    engine = engine or FaceEngine.shared()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    try:
        rgb = as_rgb_array(image, max_pixels=max_pixels)
    except ImageRejected as rejected:
        return _fail(rejected.issue, 0, timings, detail=rejected.detail)
    timings["decode"] = _ms(start)

    start = time.perf_counter()
    detection = engine.detect(rgb)
    timings["detect"] = _ms(start)
    boxes = detection.boxes
    if not boxes:
        exposure = profile.judge_exposure(float(luminance(rgb).mean()))
        return _fail(FaceIssue.NO_FACE, 0, timings, extra=exposure)
    if len(boxes) > 1:
        return _fail(FaceIssue.SEVERAL_FACES, len(boxes), timings)

    box = boxes[0]
    start = time.perf_counter()
    eyes = None
    if profile.min_eye_aspect_ratio is not None:
        eyes = eye_aspect_ratio_in_box(rgb, box, mesh or FaceMesh.shared())
    measurements = measure_face(rgb, box, eyes)
    timings["quality"] = _ms(start)
    verdict = QualityVerdict(profile.judge(measurements), 1, measurements.as_dict())

    encoding = None
    if encode:
        start = time.perf_counter()
        encoding = engine.encode(rgb, box)
        timings["encode"] = _ms(start)
    return FaceAnalysis(verdict, encoding, box, timings)


def _fail(
    issue: FaceIssue, faces: int, timings: dict[str, float], *, detail: str = "", extra: FaceIssue | None = None
) -> FaceAnalysis:
    issues = (extra, issue) if extra is not None else (issue,)
    return FaceAnalysis(QualityVerdict(issues, faces, {}, detail), None, None, timings)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
