"""Synthetic live captures built from real photos, for the liveness tests.

One copy of the builder exists: :mod:`jpki_remote.demo.live_capture` (the scripted demo feeds the same captures to the
real API). This module only re-exports it under the names the tests use.
"""

from __future__ import annotations

from jpki_remote.demo.live_capture import (
    INNER,
    JAW,
    LEFT_EYE,
    RIGHT_EYE,
    close_eyes,
    concat,
    frame_size,
    landmarks_of,
    perform,
    portrait_frame,
    repeat,
    rigid_motion,
    tilted_photo,
    to_jpeg,
    turn_head,
    waved_photo,
)
from jpki_remote.demo.live_capture import camera_noise as _camera_noise

__all__ = [
    "INNER",
    "JAW",
    "LEFT_EYE",
    "RIGHT_EYE",
    "_camera_noise",
    "close_eyes",
    "concat",
    "frame_size",
    "landmarks_of",
    "perform",
    "portrait_frame",
    "repeat",
    "rigid_motion",
    "tilted_photo",
    "to_jpeg",
    "turn_head",
    "waved_photo",
]
