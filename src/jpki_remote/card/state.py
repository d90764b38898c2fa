"""The persistent state of one card, and its file format.

A state file is JSON. Everything secret — PIN reference data, the RSA private keys (active and pending), the card's
secure-messaging keys — sits in one ``sealed`` member: AES-256-GCM under a storage key that is NOT in the file (the
:class:`~jpki_remote.card.store.CardStore` keeps it beside the card files, mode 0600). The public part (file
contents, PIN retry counters, lifecycle) is readable for diagnostics without the key.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jpki_remote.card import layout

FORMAT_VERSION = 1
LIFECYCLE_BLANK = "blank"  # manufactured: issuer keys and AP keys only
LIFECYCLE_PERSONALISED = "personalised"


class CardStateError(ValueError):
    """A state file is malformed, or cannot be opened with the given storage key."""


@dataclass
class PinRecord:
    """One key reference: its secret value and retry counter (``max_tries`` None: no limit). ``reset_count``:
    how many times the issuer has set or unblocked it (SET PIN), reported by GET STATUS so the issuer can learn
    from an authenticated answer whether a reset took effect (security finding S-4)."""

    value: bytes
    max_tries: int | None
    tries_left: int
    reset_count: int = 0

    @property
    def blocked(self) -> bool:
        return self.max_tries is not None and self.tries_left <= 0


@dataclass
class CardState:
    """Everything a card remembers across power cycles."""

    card_id: str
    serial: str  # 15 digits (共通AP card info)
    kdd: bytes  # 10-byte key diversification data returned by INITIALIZE UPDATE
    scp_keys: dict[str, bytes]  # "enc", "mac", "dek": the card's diversified static keys (secret)
    key_version: int = 0x30
    lifecycle: str = LIFECYCLE_BLANK
    files: dict[str, dict[int, bytes]] = field(default_factory=dict)  # applet -> fid -> physical content
    records: dict[str, dict[int, list[bytes]]] = field(default_factory=dict)  # applet -> fid -> records
    pins: dict[str, dict[int, PinRecord]] = field(default_factory=dict)  # applet -> fid -> PIN (value secret)
    keys: dict[str, dict[int, bytes]] = field(default_factory=dict)  # applet -> key fid -> PKCS#8 DER (secret)
    pending_keys: dict[int, bytes] = field(default_factory=dict)  # JPKI key fid -> PKCS#8 DER (secret)
    pending_certs: dict[int, bytes] = field(default_factory=dict)  # JPKI key fid -> certificate DER
    generation: int = 0  # incremented on every save: lets tests and tools see that a write happened
    issuer_auth_failures: int = 0  # issuer authentications begun and not completed, in a row (issuer_domain)

    # ---- helpers --------------------------------------------------------------------------------------------
    def pin(self, applet: str, fid: int) -> PinRecord | None:
        return self.pins.get(applet, {}).get(fid)

    def file(self, applet: str, fid: int) -> bytes | None:
        return self.files.get(applet, {}).get(fid)

    def set_file(self, applet: str, fid: int, content: bytes) -> None:
        """Store ``content`` padded with the EF's filler up to its physical size."""
        ef = layout.BY_NAME[applet].efs[fid]
        physical = bytes(content)
        if ef.size is not None:
            size = ef.size
            while size < len(physical):
                size += 256
            physical += bytes([ef.filler]) * (size - len(physical))
        self.files.setdefault(applet, {})[fid] = physical

    def public_summary(self) -> dict[str, Any]:
        """A JSON-able description without secrets (for `card show`, logs, audit)."""
        return {
            "card_id": self.card_id,
            "serial": self.serial,
            "lifecycle": self.lifecycle,
            "key_version": self.key_version,
            "files": {ap: {f"{fid:04X}": len(data) for fid, data in sorted(efs.items())}
                      for ap, efs in sorted(self.files.items())},
            "pins": {ap: {f"{fid:04X}": {"tries_left": p.tries_left, "max_tries": p.max_tries, "blocked": p.blocked}
                          for fid, p in sorted(pins.items())} for ap, pins in sorted(self.pins.items())},
            "keys": {ap: sorted(f"{fid:04X}" for fid in ks) for ap, ks in sorted(self.keys.items())},
            "pending_keys": sorted(f"{fid:04X}" for fid in self.pending_keys),
            "pending_certificates": sorted(f"{fid:04X}" for fid in self.pending_certs),
            "issuer_auth_failures": self.issuer_auth_failures,
        }

    # ---- serialisation --------------------------------------------------------------------------------------
    def to_bytes(self, storage_key: bytes) -> bytes:
        """Serialise; secrets sealed with AES-GCM under ``storage_key`` (bound to the card id)."""
        secret = {
            "scp_keys": {k: _b64(v) for k, v in self.scp_keys.items()},
            "pin_values": {ap: {f"{fid:04X}": _b64(p.value) for fid, p in pins.items()}
                           for ap, pins in self.pins.items()},
            "keys": {ap: {f"{fid:04X}": _b64(der) for fid, der in ks.items()} for ap, ks in self.keys.items()},
            "pending_keys": {f"{fid:04X}": _b64(der) for fid, der in self.pending_keys.items()},
        }
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(storage_key).encrypt(nonce, json.dumps(secret).encode(), self._aad())
        doc = {
            "format": FORMAT_VERSION,
            "card_id": self.card_id,
            "serial": self.serial,
            "kdd": self.kdd.hex(),
            "key_version": self.key_version,
            "lifecycle": self.lifecycle,
            "generation": self.generation,
            "issuer_auth_failures": self.issuer_auth_failures,
            "files": {ap: {f"{fid:04X}": _b64(d) for fid, d in efs.items()} for ap, efs in self.files.items()},
            "records": {ap: {f"{fid:04X}": [_b64(r) for r in recs] for fid, recs in rs.items()}
                        for ap, rs in self.records.items()},
            "pins": {ap: {f"{fid:04X}": {"max_tries": p.max_tries, "tries_left": p.tries_left,
                                         "reset_count": p.reset_count}
                          for fid, p in pins.items()} for ap, pins in self.pins.items()},
            "pending_certs": {f"{fid:04X}": _b64(der) for fid, der in self.pending_certs.items()},
            "sealed": _b64(nonce + sealed),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def _aad(self) -> bytes:
        return f"jpki-remote card state v{FORMAT_VERSION} {self.card_id}".encode()

    @classmethod
    def from_bytes(cls, raw: bytes, storage_key: bytes) -> CardState:
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT_VERSION:
                raise CardStateError(f"unsupported card state format {doc.get('format')!r}")
            state = cls(
                card_id=str(doc["card_id"]),
                serial=str(doc["serial"]),
                kdd=bytes.fromhex(doc["kdd"]),
                scp_keys={},
                key_version=int(doc["key_version"]),
                lifecycle=str(doc["lifecycle"]),
                generation=int(doc.get("generation", 0)),
                issuer_auth_failures=int(doc.get("issuer_auth_failures", 0)),  # absent in files of older versions
                files={ap: {int(fid, 16): _unb64(d) for fid, d in efs.items()} for ap, efs in doc["files"].items()},
                records={ap: {int(fid, 16): [_unb64(r) for r in recs] for fid, recs in rs.items()}
                         for ap, rs in doc["records"].items()},
                pending_certs={int(fid, 16): _unb64(d) for fid, d in doc["pending_certs"].items()},
            )
            blob = _unb64(doc["sealed"])
        except CardStateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CardStateError(f"malformed card state: {exc}") from exc
        try:
            secret = json.loads(AESGCM(storage_key).decrypt(blob[:12], blob[12:], state._aad()))
        except Exception as exc:  # InvalidTag, bad key length, bad JSON
            raise CardStateError("card state cannot be opened with this storage key (wrong key or tampered)") from exc
        try:
            state.scp_keys = {k: _unb64(v) for k, v in secret["scp_keys"].items()}
            values = secret["pin_values"]
            state.pins = {
                ap: {int(fid, 16): PinRecord(_unb64(values[ap][fid]), meta["max_tries"], int(meta["tries_left"]),
                                             int(meta.get("reset_count", 0)))  # absent in older files
                     for fid, meta in pins.items()}
                for ap, pins in doc["pins"].items()
            }
            state.keys = {ap: {int(fid, 16): _unb64(d) for fid, d in ks.items()} for ap, ks in secret["keys"].items()}
            state.pending_keys = {int(fid, 16): _unb64(d) for fid, d in secret["pending_keys"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise CardStateError(f"malformed card state secrets: {exc}") from exc
        return state


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
