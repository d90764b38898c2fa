"""The card-photo condition: what the live capture is really compared with.

The surface AP stores the face photo as a small greyscale JPEG 2000 (DF27). For calibration and tests we turn an
ordinary colour photo into that condition: a passport-style crop around the face (3.5 : 4.5 portrait, face about
half the width), handed to the card package's personalisation encoder
(``jpki_remote.card.personalise.encode_card_photo``), so the calibration sees exactly what our cards hold.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from jpki_remote.proofing.face.engine import FaceBox

CARD_PHOTO_ASPECT = 4.5 / 3.5


def portrait_crop(rgb: np.ndarray, box: FaceBox) -> np.ndarray:
    """A 3.5 : 4.5 head-and-shoulders crop with the face about half the width (padded with grey at the edges)."""
    crop_w = round(box.width * 2.0)
    crop_h = round(crop_w * CARD_PHOTO_ASPECT)
    centre_x = (box.left + box.right) / 2
    top = round(box.top - 0.45 * box.height)
    left = round(centre_x - crop_w / 2)
    height, width = rgb.shape[:2]
    canvas = np.full((crop_h, crop_w, 3), 200, dtype=np.uint8)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + crop_h, height), min(left + crop_w, width)
    if src_bottom > src_top and src_right > src_left:
        canvas[src_top - top : src_bottom - top, src_left - left : src_right - left] = rgb[
            src_top:src_bottom, src_left:src_right
        ]
    return canvas


def encode_card_photo_like(portrait_rgb: np.ndarray) -> bytes:
    """The portrait as the card stores it, by the card package's personalisation encoder (greyscale JPEG 2000,
    300–480 px tall, rate 8:1 — see card/personalise.py)."""
    from jpki_remote.card.personalise import encode_card_photo

    buffer = io.BytesIO()
    Image.fromarray(portrait_rgb).save(buffer, format="PNG")
    return bytes(encode_card_photo(buffer.getvalue()))


def card_photo_from(rgb: np.ndarray, box: FaceBox) -> bytes:
    """The card-photo condition of the face in ``box``: portrait crop → greyscale JP2 at card resolution."""
    return encode_card_photo_like(portrait_crop(rgb, box))
