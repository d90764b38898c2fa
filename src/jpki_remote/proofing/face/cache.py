"""A small in-memory cache of card-photo encodings, keyed by card id and the SHA-256 of the photo.

It holds encodings (128 floats) and never an image. A different photo under the same card id (a re-issued card)
gets a new key, so a stale encoding is never used; the oldest entries are dropped beyond ``max_entries``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np


def photo_digest(photo: bytes | bytearray | memoryview | np.ndarray) -> str:
    """SHA-256 of the photo bytes (for an array: of its shape, dtype and pixels)."""
    digest = hashlib.sha256()
    if isinstance(photo, np.ndarray):
        digest.update(f"{photo.shape}|{photo.dtype}|".encode())
        digest.update(np.ascontiguousarray(photo).tobytes())
    else:
        digest.update(bytes(photo))
    return digest.hexdigest()


class EncodingCache:
    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, card_id: str, digest: str) -> np.ndarray | None:
        with self._lock:
            encoding = self._entries.get((card_id, digest))
            if encoding is None:
                self.misses += 1
                return None
            self._entries.move_to_end((card_id, digest))
            self.hits += 1
            return encoding.copy()

    def put(self, card_id: str, digest: str, encoding: np.ndarray) -> None:
        stored = np.array(encoding, dtype=np.float64, copy=True)
        if stored.shape != (128,):
            raise ValueError(f"an encoding has shape (128,), got {stored.shape}")
        stored.setflags(write=False)
        with self._lock:
            self._entries[(card_id, digest)] = stored
            self._entries.move_to_end((card_id, digest))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget_card(self, card_id: str) -> int:
        """Drop every entry of ``card_id`` (card revoked or re-issued); returns how many were dropped."""
        with self._lock:
            keys = [key for key in self._entries if key[0] == card_id]
            for key in keys:
                del self._entries[key]
            return len(keys)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
