"""Shared photos, decoded and encoded once per test session (encoding is the CPU-heavy step)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from jpki_remote.config import Settings
from jpki_remote.proofing.face.analysis import FaceAnalysis, analyse
from jpki_remote.proofing.face.card_photo import card_photo_from
from jpki_remote.proofing.face.decode import decode_image
from jpki_remote.proofing.face.quality import REFERENCE_PROFILE


@dataclass(frozen=True)
class SharedPhoto:
    name: str  # "person/file"
    person: str
    data: bytes
    live: FaceAnalysis  # judged by the live quality gate, with its encoding
    card_photo: bytes  # the card-photo condition (greyscale JPEG 2000 at card resolution)
    card: FaceAnalysis  # judged by the reference gate, with its encoding


@pytest.fixture(scope="session")
def threshold() -> float:
    return Settings().face_threshold


@pytest.fixture(scope="session")
def shared_photos(faces_dir: Path) -> dict[str, SharedPhoto]:
    photos: dict[str, SharedPhoto] = {}
    for folder in sorted(p for p in faces_dir.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in {".jpg", ".png"}:
                continue
            data = path.read_bytes()
            live = analyse(data)
            assert live.box is not None, path
            card_photo = card_photo_from(decode_image(data), live.box)
            card = analyse(card_photo, profile=REFERENCE_PROFILE)
            name = f"{folder.name}/{path.name}"
            photos[name] = SharedPhoto(name, folder.name, data, live, card_photo, card)
    return photos


@pytest.fixture(scope="session")
def obama_rgb(faces_dir: Path) -> np.ndarray:
    return decode_image((faces_dir / "obama" / "1.jpg").read_bytes())
