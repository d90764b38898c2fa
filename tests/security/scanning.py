"""Finding secrets in text and bytes (used by the secrets-hygiene test; checked by ``test_scanning.py``)."""

from __future__ import annotations

import base64
import re

IMAGE_MAGIC_HEX = ("ffd8ffe0", "ffd8ffe1", "ffd8ffdb", "89504e470d0a1a0a", "0000000c6a5020200d0a870a", "ff4fff51")
IMAGE_MAGIC_B64 = ("/9j/4", "iVBORw0KGgo", "AAAADGpQICANCocK")
IMAGE_MAGIC_RAW = (b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb", b"\x89PNG\r\n\x1a\n", b"\x00\x00\x00\x0cjP  \r\n\x87\n")


class Scanner:
    """Finds secrets in text and bytes: standalone decimal/alphanumeric values (so a PIN inside a hex or base64
    blob of random data is not a false alarm), their ASCII-hex form anywhere, image magic numbers, and chunks
    of the actual face frames."""

    def __init__(self, secrets_: dict[str, str], frames: list[bytes]) -> None:
        self.patterns = {
            name: re.compile(rf"(?<![0-9A-Za-z+/]){re.escape(value)}(?![0-9A-Za-z+/])")
            for name, value in secrets_.items()
        }
        self.hex_forms = {name: value.encode().hex() for name, value in secrets_.items()}
        # 24 bytes from the middle of each frame, at an offset divisible by 3 so that the base64 of the whole frame
        # contains the base64 of the chunk
        middles = [(len(f) // 2) // 3 * 3 for f in frames]
        self.frame_chunks = [f[m : m + 24] for f, m in zip(frames, middles, strict=True)]

    def text(self, where: str, text: str, *, images_allowed: bool = False) -> list[str]:
        found = [f"{where}: {name}" for name, pattern in self.patterns.items() if pattern.search(text)]
        lowered = text.lower()
        found += [f"{where}: {name} (hex)" for name, value in self.hex_forms.items() if value in lowered]
        if not images_allowed:
            found += [f"{where}: image magic {m}" for m in IMAGE_MAGIC_HEX if m in lowered]
            found += [f"{where}: image magic {m}" for m in IMAGE_MAGIC_B64 if m in text]
            for chunk in self.frame_chunks:
                if chunk.hex() in lowered or base64.b64encode(chunk).decode() in text:
                    found.append(f"{where}: face frame bytes")
        return found

    def blob(self, where: str, data: bytes, *, images_allowed: bool = False) -> list[str]:
        found = self.text(where, data.decode("latin-1"), images_allowed=images_allowed)
        if not images_allowed:
            found += [f"{where}: raw image magic {m!r}" for m in IMAGE_MAGIC_RAW if m in data]
            found += [f"{where}: raw face frame bytes" for c in self.frame_chunks if c in data]
        return found
