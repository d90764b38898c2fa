"""A recording card double for transport tests whose subject is the transport, not the card."""

from __future__ import annotations

ATR = bytes.fromhex("3BE000FF8131FE4514")


class RecordingCard:
    """A card double that records resets and answers every APDU with its reversed bytes + 9000."""

    atr = ATR

    def __init__(self) -> None:
        self.resets = 0
        self.commands: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.commands.append(apdu)
        if apdu[:2] == b"\xde\xad":
            raise RuntimeError("card bug")
        return apdu[::-1] + b"\x90\x00"

    def reset(self) -> None:
        self.resets += 1
