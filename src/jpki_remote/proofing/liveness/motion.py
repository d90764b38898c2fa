"""Geometry that tells a head from a picture of a head.

``nose_parallax``: fit one homography (a flat plane seen from another angle) to the face-outline landmarks of two
frames and measure how far the nose tip and bridge land from where that plane says they should be. A printed photo
or a screen moved, tilted or rotated is one plane: the nose follows the outline and the parallax stays at landmark
noise (≤ 0.012 of the face width on our photos). A real head turning moves the nose across the face, giving a
parallax in the direction of the turn (≥ 0.02 on our simulated turns; real turns of 20–30° give much more).

``frame_change``: mean absolute grey-level difference between two frames at 160 px, to spot a replayed still.
"""

from __future__ import annotations

import numpy as np

from jpki_remote.proofing.face.mesh import MeshFace

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
NOSE = (1, 2, 4, 5, 6, 195, 197, 98, 327)
CHANGE_SIZE = 160


def nose_parallax(reference: MeshFace, frame: MeshFace) -> float:
    """Signed horizontal nose displacement off the outline's plane, in face widths (positive: towards image right)."""
    import cv2

    oval_ref = reference.points[list(FACE_OVAL)].astype(np.float64)
    oval = frame.points[list(FACE_OVAL)].astype(np.float64)
    homography, _ = cv2.findHomography(oval_ref, oval, 0)
    if homography is None:
        return 0.0
    expected = cv2.perspectiveTransform(reference.points[list(NOSE)][None].astype(np.float64), homography)[0]
    actual = frame.points[list(NOSE)]
    return float(np.mean(actual[:, 0] - expected[:, 0])) / frame.face_width


def small_grey(rgb: np.ndarray) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    scale = CHANGE_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA).astype(np.float32)


def frame_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (0–255) of two ``small_grey`` frames; frames of different sizes count as changed."""
    if a.shape != b.shape:
        return 255.0
    return float(np.mean(np.abs(a - b)))
