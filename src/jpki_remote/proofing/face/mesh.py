"""MediaPipe Face Mesh (0.10.21, model shipped inside the wheel, runs offline): 478 landmarks per face.

Used for what dlib's 68-point predictor does badly: closed eyes (the regression trees keep drawing an open eye over
shut lids) and head yaw. Each call is an independent still-image detection (``static_image_mode``), so results do
not depend on frame history. The MediaPipe graph is not thread-safe: calls are serialised per instance.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

# eye contours: outer corner, two upper-lid points, inner corner, two lower-lid points (p1..p6 of the EAR formula)
RIGHT_EYE = (33, 160, 158, 133, 153, 144)  # the subject's right eye (image left in an un-mirrored frame)
LEFT_EYE = (362, 385, 387, 263, 373, 380)
NOSE_TIP = 1
CHEEK_IMAGE_LEFT = 234
CHEEK_IMAGE_RIGHT = 454
# landmarks of the eyes and the mouth move on their own (blinks, speech); the rest move with the skull
_MOBILE = {
    7,
    33,
    133,
    144,
    145,
    153,
    154,
    155,
    157,
    158,
    159,
    160,
    161,
    163,
    173,
    246,
    249,
    263,
    362,
    373,
    374,
    380,
    381,
    382,
    384,
    385,
    386,
    387,
    388,
    390,
    398,
    466,
    0,
    13,
    14,
    17,
    37,
    39,
    40,
    61,
    78,
    80,
    81,
    82,
    84,
    87,
    88,
    91,
    95,
    146,
    178,
    181,
    185,
    191,
    267,
    269,
    270,
    291,
    308,
    310,
    311,
    312,
    314,
    317,
    318,
    321,
    324,
    375,
    402,
    405,
    409,
    415,
}
RIGID_POINTS = tuple(i for i in range(468) if i not in _MOBILE)


@dataclass(frozen=True)
class MeshFace:
    points: np.ndarray  # (478, 2) x, y in pixels of the analysed image

    @property
    def face_width(self) -> float:
        return float(abs(self.points[CHEEK_IMAGE_RIGHT, 0] - self.points[CHEEK_IMAGE_LEFT, 0])) or 1.0

    @property
    def eye_aspect_ratio(self) -> float:
        return (_ear(self.points, RIGHT_EYE) + _ear(self.points, LEFT_EYE)) / 2.0

    @property
    def yaw_ratio(self) -> float:
        """Where the nose tip sits between the two cheek contours, minus 0.5: about 0 facing the camera, positive
        when the nose moves towards the image's right (the holder turned to their own left, un-mirrored camera)."""
        left = self.points[CHEEK_IMAGE_LEFT, 0]
        right = self.points[CHEEK_IMAGE_RIGHT, 0]
        span = right - left
        if abs(span) < 1e-6:
            return 0.0
        return float((self.points[NOSE_TIP, 0] - left) / span - 0.5)


def _ear(points: np.ndarray, idx: tuple[int, ...]) -> float:
    p1, p2, p3, p4, p5, p6 = (points[i] for i in idx)
    width = float(np.linalg.norm(p1 - p4))
    if width <= 0:
        return 0.0
    return float(np.linalg.norm(p2 - p6) + np.linalg.norm(p3 - p5)) / (2.0 * width)


class FaceMesh:
    _shared: FaceMesh | None = None
    _shared_lock = threading.Lock()

    def __init__(self, max_faces: int = 2) -> None:
        self.max_faces = max_faces
        self._lock = threading.Lock()
        self._mesh: object | None = None

    @classmethod
    def shared(cls) -> FaceMesh:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def _load(self) -> object:
        if self._mesh is None:
            os.environ.setdefault("GLOG_minloglevel", "2")
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            from mediapipe.python.solutions import face_mesh

            self._mesh = face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=self.max_faces,
                refine_landmarks=True,
                min_detection_confidence=0.5,
            )
        return self._mesh

    def faces(self, rgb: np.ndarray) -> list[MeshFace]:
        """Landmarks of up to ``max_faces`` faces in an (H, W, 3) uint8 RGB image."""
        height, width = rgb.shape[:2]
        with self._lock:
            result = self._load().process(np.ascontiguousarray(rgb))  # type: ignore[attr-defined]
        found = result.multi_face_landmarks or []
        return [
            MeshFace(np.array([(p.x * width, p.y * height) for p in face.landmark], dtype=np.float64)) for face in found
        ]
