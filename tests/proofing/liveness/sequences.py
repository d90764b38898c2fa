"""Deterministic synthetic frame sequences built from real photos, for the liveness and quality-gate tests.

- ``close_eyes``: paints eyelids over both eyes (dlib eye-landmark polygons filled with skin colour sampled under
  the eye, feathered, with a dark lash line), which is what a blink looks like in one frame;
- ``turn_head``: a piecewise-affine warp over the 68-landmark triangulation that shifts the inner face (nose, eyes,
  mouth) sideways relative to the fixed face outline — the 2-D signature of a head yaw;
- ``rigid_motion``: one still picture moved by a rotation + scale + shift (a printed photo waved at the camera).
No randomness: every function is a pure function of its inputs.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from jpki_remote.proofing.face.engine import FaceEngine

LEFT_EYE = list(range(36, 42))
RIGHT_EYE = list(range(42, 48))
JAW = list(range(0, 17))
INNER = list(range(17, 68))  # brows, nose, eyes, mouth


def landmarks_of(rgb: np.ndarray, engine: FaceEngine | None = None) -> np.ndarray:
    engine = engine or FaceEngine.shared()
    boxes = engine.detect(rgb).boxes
    if len(boxes) != 1:
        raise ValueError(f"expected one face, found {len(boxes)}")
    return engine.landmarks68(rgb, boxes[0])


def close_eyes(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The same picture with both eyes shut: the opening is filled with the lid skin cloned from just above the eye
    (so texture and shading stay natural) and a thin dark lash line follows the lower lid."""
    out = rgb.copy()
    height, width = rgb.shape[:2]
    for eye in (LEFT_EYE, RIGHT_EYE):
        points = landmarks[eye].astype(np.float64)
        centre = points.mean(axis=0)
        eye_width = float(np.linalg.norm(points[0] - points[3]))
        opening = float(np.linalg.norm(points[1] - points[5]) + np.linalg.norm(points[2] - points[4])) / 2
        polygon = (points - centre) * np.array([1.08, 1.3]) + centre
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 255)
        feather = max(3, int(eye_width * 0.25) | 1)
        soft = cv2.GaussianBlur(mask, (feather, feather), 0).astype(np.float64)[..., None] / 255.0
        lift = max(2.0, opening * 1.2)
        shift = np.float32([[1, 0, 0], [0, 1, -lift]])  # content from above moves down over the eye
        lid = cv2.warpAffine(rgb, shift, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out = np.clip(out * (1 - soft) + lid * soft, 0, 255).astype(np.uint8)
        lower = (points[4] + points[5]) / 2
        lash = np.array([points[0], lower * 0.6 + centre * 0.4, points[3]])
        curve = np.array([_bezier(lash, t) for t in np.linspace(0, 1, 12)])
        thickness = max(1, round(eye_width / 22))
        cv2.polylines(out, [np.round(curve).astype(np.int32)], False, (45, 32, 28), thickness, cv2.LINE_AA)
    return out


def _bezier(points: np.ndarray, t: float) -> np.ndarray:
    return (1 - t) ** 2 * points[0] + 2 * (1 - t) * t * points[1] + t**2 * points[2]


def turn_head(rgb: np.ndarray, landmarks: np.ndarray, amount: float) -> np.ndarray:
    """Simulated yaw. ``amount`` > 0 moves the inner face towards the image's right (the subject's left), as a head
    turned to the subject's left looks in a non-mirrored camera; the fraction is of the face width."""
    height, width = rgb.shape[:2]
    face_width = float(np.ptp(landmarks[JAW, 0]))
    centre_x = float(landmarks[JAW, 0].mean())
    src = landmarks.astype(np.float64).copy()
    dst = src.copy()
    for i in INNER:
        # points near the midline move most, points near the outline less (a rotating convex surface)
        closeness = 1.0 - min(abs(src[i, 0] - centre_x) / (face_width / 2), 1.0)
        dst[i, 0] += amount * face_width * (0.35 + 0.65 * closeness)
    corners = np.array(
        [
            [0, 0],
            [width - 1, 0],
            [0, height - 1],
            [width - 1, height - 1],
            [width // 2, 0],
            [width // 2, height - 1],
            [0, height // 2],
            [width - 1, height // 2],
        ],
        dtype=np.float64,
    )
    src_all = np.vstack([src, corners])
    dst_all = np.vstack([dst, corners])
    return _piecewise_affine(rgb, src_all, dst_all)


def _piecewise_affine(rgb: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    subdiv = cv2.Subdiv2D((0, 0, width, height))
    index = {}
    for i, (x, y) in enumerate(dst):
        px, py = float(min(max(x, 0), width - 1)), float(min(max(y, 0), height - 1))
        index[(round(px, 3), round(py, 3))] = i
        subdiv.insert((px, py))
    out = rgb.copy()
    for tri in subdiv.getTriangleList():
        pts = tri.reshape(3, 2)
        ids = [index.get((round(float(x), 3), round(float(y), 3))) for x, y in pts]
        if any(i is None for i in ids):
            continue
        d = dst[ids].astype(np.float32)
        s = src[ids].astype(np.float32)
        x, y, w, h = cv2.boundingRect(d)
        if w <= 0 or h <= 0:
            continue
        matrix = cv2.getAffineTransform(s, d)
        warped = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillConvexPoly(mask, np.round(d).astype(np.int32), 1)
        out[mask == 1] = warped[mask == 1]
    return out


def rigid_motion(rgb: np.ndarray, angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    matrix[:, 2] += shift
    return cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def to_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def frame_size(rgb: np.ndarray, long_side: int = 640) -> np.ndarray:
    """A camera-sized frame (longer side ``long_side``) of a photo."""
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    return cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def repeat(frame: np.ndarray, count: int) -> list[np.ndarray]:
    return [frame.copy() for _ in range(count)]


def concat(*parts: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [frame for part in parts for frame in part]


def portrait_frame(rgb: np.ndarray, engine: FaceEngine | None = None) -> np.ndarray:
    """A kiosk-camera-like frame: head and shoulders around the one face, scaled to 640 px on the long side."""
    engine = engine or FaceEngine.shared()
    box = engine.detect(rgb).boxes[0]
    height, width = rgb.shape[:2]
    half = box.width * 1.6
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    top, bottom = int(max(cy - half * 1.25, 0)), int(min(cy + half * 1.25, height))
    left, right = int(max(cx - half, 0)), int(min(cx + half, width))
    return frame_size(np.ascontiguousarray(rgb[top:bottom, left:right]))


def _camera_noise(rgb: np.ndarray, seed: int) -> np.ndarray:
    """Sensor noise and a one-pixel sway, so consecutive frames of a live person are never byte-identical."""
    rng = np.random.default_rng(seed)
    swayed = rigid_motion(rgb, 0.0, 1.0, (float(seed % 3 - 1), float((seed // 3) % 3 - 1)))
    noisy = swayed.astype(np.int16) + rng.normal(0.0, 2.0, size=rgb.shape).round().astype(np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def perform(rgb: np.ndarray, actions: Sequence[str], *, neutral: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Frames of a person doing ``actions`` ("blink", "turn_left", "turn_right") with neutral frames around each."""
    landmarks = landmarks_of(rgb)
    closed = close_eyes(rgb, landmarks)
    poses = {
        "blink": [closed, closed],
        # the holder's left: the nose moves towards the image's right in an un-mirrored frame
        "turn_left": [turn_head(rgb, landmarks, 0.07), turn_head(rgb, landmarks, 0.11)],
        "turn_right": [turn_head(rgb, landmarks, -0.07), turn_head(rgb, landmarks, -0.11)],
    }
    frames: list[np.ndarray] = []
    counter = seed * 1000

    def add(picture: np.ndarray) -> None:
        nonlocal counter
        frames.append(_camera_noise(picture, counter))
        counter += 1

    for _ in range(neutral):
        add(rgb)
    for action in actions:
        for pose in poses[action]:
            add(pose)
        for _ in range(neutral):
            add(rgb)
    return frames


def waved_photo(rgb: np.ndarray, count: int = 12) -> list[np.ndarray]:
    """A printed photo held in front of the camera and moved: rotation, scale and shift only, no blink."""
    frames = []
    for i in range(count):
        t = i / max(count - 1, 1)
        frames.append(rigid_motion(rgb, 8.0 * np.sin(2 * np.pi * t), 1.0 + 0.08 * t, (25.0 * t, -15.0 * t)))
    return frames


def tilted_photo(rgb: np.ndarray, amounts: Sequence[float]) -> list[np.ndarray]:
    """A flat picture turned about its vertical axis (perspective), which shifts the nose like a small head turn."""
    height, width = rgb.shape[:2]
    src = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    frames = []
    for a in amounts:
        left_squeeze, right_squeeze = max(a, 0.0) * height, max(-a, 0.0) * height
        dst = np.float32(
            [[0, left_squeeze], [width, right_squeeze], [width, height - right_squeeze], [0, height - left_squeeze]]
        )
        matrix = cv2.getPerspectiveTransform(src, dst)
        frames.append(cv2.warpPerspective(rgb, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE))
    return frames
