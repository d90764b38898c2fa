"""Stable codes shown to the holder, each with its Japanese and English text (the UI and the audit log use the code)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class HolderCode(StrEnum):
    """Base of the proofing reason codes; a subclass returns its ``{member: (ja, en)}`` table from ``_texts``."""

    @classmethod
    def _texts(cls) -> Mapping[HolderCode, tuple[str, str]]:
        raise NotImplementedError

    @property
    def message_ja(self) -> str:
        return self._texts()[self][0]

    @property
    def message_en(self) -> str:
        return self._texts()[self][1]

    def message(self, language: str = "ja") -> str:
        """The text for the holder in ``language`` ("ja" or "en"; anything else falls back to Japanese)."""
        return self.message_en if language == "en" else self.message_ja
