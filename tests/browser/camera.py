"""Fake-camera videos for chromium (``--use-file-for-fake-video-capture``) built from the real test photos.

The kiosk page captures its liveness frames on a fixed timetable counted from the moment it (re)opens the camera
(``static/js/camera.js``, ``SCHEDULE``); chromium's file-backed fake camera starts the file from its first frame
whenever a stream is opened. So a video laid out on the same timetable shows the asked action while the page
captures for it. The blink and head-turn poses come from the face engineer's synthetic sequence primitives
(``tests/proofing/liveness/sequences.py``: eyelids painted over the dlib eye landmarks; a piecewise-affine yaw).

Y4M: ``YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg``; chromium reads it as BT.601 *limited* range, so PIL's
full-range YCbCr is scaled (Y' = 16 + 219·Y/255, C' = 16 + 224·C/255).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from jpki_remote.proofing.face.decode import decode_image
from jpki_remote.proofing.face.engine import FaceEngine
from proofing.liveness.sequences import close_eyes, landmarks_of, rigid_motion, turn_head

WIDTH, HEIGHT, FPS = 640, 480, 10
# The page's timetable (camera.js SCHEDULE), in milliseconds from the stream's first frame.
LEAD_MS = 1500
STEP_MS = 3000
TAIL_MS = 4000  # generous: the capture ends 1 s into it; the rest keeps a late or repeated capture neutral


def camera_frame(photo: Path) -> np.ndarray:
    """A 640×480 webcam-like frame of the one face in ``photo``: head and shoulders, face ~35 % of the width."""
    rgb = decode_image(photo.read_bytes())
    box = FaceEngine.shared().detect(rgb).boxes[0]
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    crop_w = box.width / 0.35
    crop_h = crop_w * HEIGHT / WIDTH
    left, top = cx - crop_w / 2, cy - crop_h * 0.45
    # an affine crop: out-of-picture parts are filled by replicating the border, like a plain background
    matrix = np.float32([[WIDTH / crop_w, 0, -left * WIDTH / crop_w], [0, HEIGHT / crop_h, -top * HEIGHT / crop_h]])
    return cv2.warpAffine(rgb, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def _noise(rgb: np.ndarray, index: int) -> np.ndarray:
    """Sensor noise and a one-pixel sway: a live camera never sends two identical frames."""
    rng = np.random.default_rng(index)
    swayed = rigid_motion(rgb, 0.0, 1.0, (float(index % 3 - 1), float((index // 3) % 3 - 1)))
    noisy = swayed.astype(np.int16) + rng.normal(0.0, 2.0, size=rgb.shape).round().astype(np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _poses(frame: np.ndarray) -> dict[str, list[tuple[int, int, np.ndarray]]]:
    """For each action: (start ms, end ms, picture) inside its 3-second window, the rest of the window neutral."""
    marks = landmarks_of(frame)
    closed = close_eyes(frame, marks)
    left_half, left_full = turn_head(frame, marks, 0.07), turn_head(frame, marks, 0.11)
    right_half, right_full = turn_head(frame, marks, -0.07), turn_head(frame, marks, -0.11)
    return {
        "blink": [(600, 1900, closed)],
        # the holder's left: the nose moves towards the image's right in the raw (un-mirrored) frame
        "turn_left": [(400, 700, left_half), (700, 2000, left_full), (2000, 2300, left_half)],
        "turn_right": [(400, 700, right_half), (700, 2000, right_full), (2000, 2300, right_half)],
    }


@lru_cache(maxsize=16)
def _neutral(photo: Path) -> np.ndarray:
    return camera_frame(photo)


@lru_cache(maxsize=16)
def _prepared(photo: Path) -> tuple[np.ndarray, dict[str, list[tuple[int, int, np.ndarray]]]]:
    """The neutral frame and the action poses of one photo (the slow part: detection, landmarks, warps), kept for
    the next video of the same person with another challenge order."""
    neutral = _neutral(photo)
    return neutral, _poses(neutral)


def challenge_frames(photo: Path, actions: Sequence[str]) -> list[np.ndarray]:
    """The whole video: neutral lead, each action in its window (in the given order), neutral tail."""
    neutral, poses = _prepared(photo)
    total_ms = LEAD_MS + STEP_MS * len(actions) + TAIL_MS
    frames = []
    for index in range(total_ms * FPS // 1000):
        ms = index * 1000 // FPS
        picture = neutral
        if LEAD_MS <= ms < LEAD_MS + STEP_MS * len(actions):
            step = (ms - LEAD_MS) // STEP_MS
            offset = (ms - LEAD_MS) % STEP_MS
            for start, end, pose in poses[actions[step]]:
                if start <= offset < end:
                    picture = pose
        frames.append(_noise(picture, index))
    return frames


def still_frames(photo: Path, seconds: int = 20) -> list[np.ndarray]:
    """A person sitting still (breathing-level noise only) — enough for preview and for refusal tests."""
    neutral = _neutral(photo)
    return [_noise(neutral, index) for index in range(seconds * FPS)]


def write_y4m(frames: Sequence[np.ndarray], path: Path) -> Path:
    """Write 640×480 RGB frames as a 4:2:0 limited-range Y4M file chromium can play as a camera."""
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            if rgb.shape != (HEIGHT, WIDTH, 3):
                raise ValueError(f"frames must be {WIDTH}x{HEIGHT} RGB, got {rgb.shape}")
            ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr"), dtype=np.float32)
            y = 16 + ycc[..., 0] * 219 / 255
            chroma = ycc[..., 1:].reshape(HEIGHT // 2, 2, WIDTH // 2, 2, 2).mean(axis=(1, 3))
            cb, cr = (16 + chroma[..., i] * 224 / 255 for i in (0, 1))
            out.write(b"FRAME\n")
            for plane in (y, cb, cr):
                out.write(np.clip(np.round(plane), 0, 255).astype(np.uint8).tobytes())
    return path
