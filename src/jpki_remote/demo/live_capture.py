"""Synthetic live captures built from one real photo: a person who blinks and turns the head as a liveness
challenge asks — for the scripted demo (and the liveness tests), where no one sits in front of a camera.

The poses are 2-D edits of the photo driven by dlib's 68 facial landmarks (the face package's
:meth:`~jpki_remote.proofing.face.engine.FaceEngine.landmarks68`):

- :func:`close_eyes` — both eyes shut: the eye opening is filled with lid skin cloned from just above the eye
  (feathered, so texture and shading stay natural) and a thin dark lash line follows the lower lid;
- :func:`turn_head` — a head yaw: a piecewise-affine warp over the landmark triangulation moves the inner face
  (brows, eyes, nose, mouth) sideways against the fixed outline, most near the midline (a rotating convex surface);
- :func:`rigid_motion` — one still picture rotated, scaled and shifted (a printed photo waved at the camera).

:func:`perform` strings poses into a frame sequence with neutral frames between the actions and camera noise on
every frame (a live camera never sends two identical frames); :func:`capture` is the whole thing from image bytes
to JPEG frames. Everything is deterministic: the same inputs give the same frames.

Also here, for the refusal tests: :func:`waved_photo` and :func:`tilted_photo` (a flat picture moved or turned,
which must *not* pass liveness).
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
ACTIONS = ("blink", "turn_left", "turn_right")
FRAME_LONG_SIDE = 640


class CaptureError(ValueError):
    """The photo cannot be turned into a live capture (no face, several faces, unreadable image)."""


def decode_rgb(image: bytes) -> np.ndarray:
    """Image bytes (any format the face package decodes) as an RGB array."""
    from jpki_remote.proofing.face.decode import ImageRejected, decode_image

    try:
        return decode_image(image)
    except ImageRejected as exc:
        raise CaptureError(f"unreadable photo: {exc}") from None


def landmarks_of(rgb: np.ndarray, engine: FaceEngine | None = None) -> np.ndarray:
    """The 68 dlib landmarks of the one face in ``rgb``."""
    engine = engine or FaceEngine.shared()
    boxes = engine.detect(rgb).boxes
    if len(boxes) != 1:
        raise CaptureError(f"expected one face, found {len(boxes)}")
    return engine.landmarks68(rgb, boxes[0])


def close_eyes(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The same picture with both eyes shut."""
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
        shift = np.float32([[1, 0, 0], [0, 1, -lift]])  # the skin above the eye moves down over it
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
    """Simulated yaw. ``amount`` > 0 moves the inner face towards the image's right — the subject's left in an
    un-mirrored camera frame; the amount is a fraction of the face width."""
    height, width = rgb.shape[:2]
    face_width = float(np.ptp(landmarks[JAW, 0]))
    centre_x = float(landmarks[JAW, 0].mean())
    src = landmarks.astype(np.float64).copy()
    dst = src.copy()
    for i in INNER:
        closeness = 1.0 - min(abs(src[i, 0] - centre_x) / (face_width / 2), 1.0)
        dst[i, 0] += amount * face_width * (0.35 + 0.65 * closeness)
    w, h = width - 1, height - 1
    corners = np.array(
        [[0, 0], [w, 0], [0, h], [w, h], [width // 2, 0], [width // 2, h], [0, height // 2], [w, height // 2]],
        dtype=np.float64,
    )
    return _piecewise_affine(rgb, np.vstack([src, corners]), np.vstack([dst, corners]))


def _piecewise_affine(rgb: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    subdiv = cv2.Subdiv2D((0, 0, width, height))
    index = {}
    for i, (x, y) in enumerate(dst):
        px, py = float(min(max(x, 0), width - 1)), float(min(max(y, 0), height - 1))
        index[(round(px, 3), round(py, 3))] = i
        subdiv.insert((px, py))
    out = rgb.copy()
    for triangle in subdiv.getTriangleList():
        ids = [index.get((round(float(x), 3), round(float(y), 3))) for x, y in triangle.reshape(3, 2)]
        if any(i is None for i in ids):
            continue
        target = dst[ids].astype(np.float32)
        _x, _y, w, h = cv2.boundingRect(target)
        if w <= 0 or h <= 0:
            continue
        matrix = cv2.getAffineTransform(src[ids].astype(np.float32), target)
        warped = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillConvexPoly(mask, np.round(target).astype(np.int32), 1)
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


def frame_size(rgb: np.ndarray, long_side: int = FRAME_LONG_SIDE) -> np.ndarray:
    """A camera-sized frame (longer side ``long_side``) of a photo."""
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    return cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def repeat(frame: np.ndarray, count: int) -> list[np.ndarray]:
    return [frame.copy() for _ in range(count)]


def concat(*parts: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [frame for part in parts for frame in part]


def portrait_frame(rgb: np.ndarray, engine: FaceEngine | None = None) -> np.ndarray:
    """A kiosk-camera-like frame: head and shoulders around the one face, 640 px on the long side."""
    engine = engine or FaceEngine.shared()
    boxes = engine.detect(rgb).boxes
    if len(boxes) != 1:
        raise CaptureError(f"expected one face, found {len(boxes)}")
    box = boxes[0]
    height, width = rgb.shape[:2]
    half = box.width * 1.6
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    top, bottom = int(max(cy - half * 1.25, 0)), int(min(cy + half * 1.25, height))
    left, right = int(max(cx - half, 0)), int(min(cx + half, width))
    return frame_size(np.ascontiguousarray(rgb[top:bottom, left:right]))


def camera_noise(rgb: np.ndarray, seed: int) -> np.ndarray:
    """Sensor noise and a one-pixel sway, so consecutive frames of a live person are never byte-identical."""
    rng = np.random.default_rng(seed)
    swayed = rigid_motion(rgb, 0.0, 1.0, (float(seed % 3 - 1), float((seed // 3) % 3 - 1)))
    noisy = swayed.astype(np.int16) + rng.normal(0.0, 2.0, size=rgb.shape).round().astype(np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def poses(rgb: np.ndarray, landmarks: np.ndarray | None = None) -> dict[str, list[np.ndarray]]:
    """The pictures of each action (two per action: the movement and its peak)."""
    marks = landmarks_of(rgb) if landmarks is None else landmarks
    closed = close_eyes(rgb, marks)
    return {
        "blink": [closed, closed],
        # the holder's left: the nose moves towards the image's right in an un-mirrored frame
        "turn_left": [turn_head(rgb, marks, 0.07), turn_head(rgb, marks, 0.11)],
        "turn_right": [turn_head(rgb, marks, -0.07), turn_head(rgb, marks, -0.11)],
    }


def perform(rgb: np.ndarray, actions: Sequence[str], *, neutral: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Frames of a person doing ``actions`` ("blink", "turn_left", "turn_right") with neutral frames around each."""
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise CaptureError(f"unknown liveness action(s): {', '.join(map(str, unknown))}")
    pictures = poses(rgb)
    frames: list[np.ndarray] = []
    counter = seed * 1000

    def add(picture: np.ndarray) -> None:
        nonlocal counter
        frames.append(camera_noise(picture, counter))
        counter += 1

    for _ in range(neutral):
        add(rgb)
    for action in actions:
        for pose in pictures[action]:
            add(pose)
        for _ in range(neutral):
            add(rgb)
    return frames


def capture(photo: bytes, actions: Sequence[str], *, neutral: int = 2, seed: int = 0) -> list[bytes]:
    """JPEG frames of the person in ``photo`` performing ``actions`` in front of a kiosk camera."""
    frame = portrait_frame(decode_rgb(photo))
    return [to_jpeg(f) for f in perform(frame, actions, neutral=neutral, seed=seed)]


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
        left, right = max(a, 0.0) * height, max(-a, 0.0) * height
        dst = np.float32([[0, left], [width, right], [width, height - right], [0, height - left]])
        matrix = cv2.getPerspectiveTransform(src, dst)
        frames.append(cv2.warpPerspective(rgb, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE))
    return frames
