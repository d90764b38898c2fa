"""Measurements behind the quality gate and the two profiles that judge them (live capture, reference photo).

Every measurement is cheap and made on the detected face only: its size in original pixels, the share of its box
outside the picture, the mean luminance of the face, the variance of the Laplacian of the face scaled to 128×128
(sharpness, comparable across resolutions) and the eye aspect ratio from MediaPipe's face mesh (open eyes ≈ 0.18–0.35,
shut eyes below 0.1 on our photos; dlib's 68-point predictor keeps drawing open eyes over shut lids).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jpki_remote.proofing.face.engine import FaceBox
from jpki_remote.proofing.face.issues import FaceIssue
from jpki_remote.proofing.face.mesh import FaceMesh

SHARPNESS_SIZE = 128


@dataclass(frozen=True)
class QualityProfile:
    """Limits for one kind of image. The live profile is strict; the reference profile accepts the small, soft,
    greyscale card photo (it was checked at issuance) but still needs exactly one whole face."""

    name: str
    min_face_pixels: int
    max_outside_fraction: float
    min_brightness: float
    max_brightness: float
    min_sharpness: float
    min_eye_aspect_ratio: float | None  # None: eyes are not checked

    def judge(self, m: FaceMeasurements) -> tuple[FaceIssue, ...]:
        issues: list[FaceIssue] = []
        if m.outside_fraction > self.max_outside_fraction:
            issues.append(FaceIssue.FACE_CUT_OFF)
        if m.face_pixels < self.min_face_pixels:
            issues.append(FaceIssue.FACE_TOO_SMALL)
        if m.brightness < self.min_brightness:
            issues.append(FaceIssue.TOO_DARK)
        elif m.brightness > self.max_brightness:
            issues.append(FaceIssue.TOO_BRIGHT)
        if m.sharpness < self.min_sharpness:
            issues.append(FaceIssue.TOO_BLURRY)
        if (
            self.min_eye_aspect_ratio is not None
            and m.eye_aspect_ratio is not None
            and m.eye_aspect_ratio < self.min_eye_aspect_ratio
        ):
            issues.append(FaceIssue.EYES_CLOSED)
        return tuple(issues)

    def judge_exposure(self, brightness: float) -> FaceIssue | None:
        """For a picture with no face found: is the whole picture too dark or too bright to find one?"""
        if brightness < self.min_brightness:
            return FaceIssue.TOO_DARK
        if brightness > self.max_brightness:
            return FaceIssue.TOO_BRIGHT
        return None


LIVE_PROFILE = QualityProfile(
    name="live",
    min_face_pixels=100,
    max_outside_fraction=0.05,
    min_brightness=50.0,
    max_brightness=210.0,
    min_sharpness=40.0,
    min_eye_aspect_ratio=0.13,
)
REFERENCE_PROFILE = QualityProfile(
    name="reference",
    min_face_pixels=64,
    max_outside_fraction=0.05,
    min_brightness=35.0,
    max_brightness=225.0,
    min_sharpness=15.0,
    min_eye_aspect_ratio=None,
)


@dataclass(frozen=True)
class FaceMeasurements:
    face_pixels: int  # width of the face box in original pixels
    outside_fraction: float  # share of the face box outside the picture
    brightness: float  # mean luminance 0–255 of the face
    sharpness: float  # variance of the Laplacian of the face at 128×128
    eye_aspect_ratio: float | None  # mean of both eyes; None when the face mesh did not find the face

    def as_dict(self) -> dict[str, float]:
        values = {
            "face_pixels": float(self.face_pixels),
            "outside_fraction": round(self.outside_fraction, 3),
            "brightness": round(self.brightness, 1),
            "sharpness": round(self.sharpness, 1),
        }
        if self.eye_aspect_ratio is not None:
            values["eye_aspect_ratio"] = round(self.eye_aspect_ratio, 3)
        return values


def luminance(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def measure_face(rgb: np.ndarray, box: FaceBox, eye_aspect_ratio: float | None) -> FaceMeasurements:
    import cv2

    height, width = rgb.shape[:2]
    inside = box.clipped(width, height)
    area = max(box.width * box.height, 1)
    inside_area = max(inside.width, 0) * max(inside.height, 0)
    outside = 1.0 - inside_area / area
    if inside_area == 0:
        return FaceMeasurements(box.width, 1.0, 0.0, 0.0, eye_aspect_ratio)
    grey = luminance(rgb[inside.top : inside.bottom, inside.left : inside.right])
    brightness = float(grey.mean())
    scaled = cv2.resize(grey, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=cv2.INTER_AREA)
    sharpness = float(cv2.Laplacian(scaled, cv2.CV_64F).var())
    return FaceMeasurements(box.width, outside, brightness, sharpness, eye_aspect_ratio)


def eye_aspect_ratio_in_box(rgb: np.ndarray, box: FaceBox, mesh: FaceMesh) -> float | None:
    """Eye aspect ratio (Soukupová & Čech 2016, on face-mesh eye contours) of the face in ``box``: the mesh runs on
    the box enlarged by half its size, and the mesh face nearest the box centre is taken."""
    height, width = rgb.shape[:2]
    margin_x, margin_y = box.width // 2, box.height // 2
    crop = FaceBox(box.left - margin_x, box.top - margin_y, box.right + margin_x, box.bottom + margin_y).clipped(
        width, height
    )
    if crop.width < 8 or crop.height < 8:
        return None
    faces = mesh.faces(np.ascontiguousarray(rgb[crop.top : crop.bottom, crop.left : crop.right]))
    if not faces:
        return None
    centre = np.array([(box.left + box.right) / 2 - crop.left, (box.top + box.bottom) / 2 - crop.top])
    nearest = min(faces, key=lambda face: float(np.linalg.norm(face.points[:468].mean(axis=0) - centre)))
    return nearest.eye_aspect_ratio
