"""`IssuerSession`: the host (server) side of the issuer secure channel.

The server holds the issuer keys (the master key, or in production only the per-card static keys an HSM derived
from it); the terminal only relays opaque APDUs (``transmit``). The session opens
with INITIALIZE UPDATE / EXTERNAL AUTHENTICATE (mutual authentication, per-card keys diversified from the master over
the card's KDD, per-session keys), then every command carries C-MAC and encrypted data, and every response is checked
(R-MAC) and decrypted. See :mod:`jpki_remote.card.issuer_domain` for the command set.

Randomness: the only random value the host contributes is the 8-byte host challenge of INITIALIZE UPDATE, drawn
from ``random`` (default :func:`secrets.token_bytes`). Injecting a deterministic source makes the command sequence
reproducible for the same card responses — what a script re-run over a stored transcript needs
(:mod:`jpki_remote.procedures.conversation`). ``expected_kdd`` makes :meth:`IssuerSession.open` refuse another
card (:class:`CardMismatchError`) before any key is derived for it.

Example::

    with IssuerSession(card.transmit, master_key) as issuer:
        public = issuer.generate_key("jpki", layout.JPKI_AUTH_KEY)   # pending slot
        issuer.put_certificate(layout.JPKI_AUTH_KEY, certificate_der)
        issuer.commit()
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_remote.card import issuer_domain as isd
from jpki_remote.card import layout, scp03
from jpki_remote.card.apdu import SW, CommandApdu, ResponseApdu
from jpki_remote.card.client import CardError, Transmit, _as_transmit, raise_for_sw, send
from jpki_remote.card.signing import parse_card_public_key
from jpki_remote.card.tlv import TlvError, iterate

# Largest chunk per command so that a short APDU still fits: padding to 16 + 8-byte MAC + 3-byte STORE DATA header.
SHORT_CHUNK = 236
LIFECYCLE_NAMES = {code: name for name, code in isd.LIFECYCLE_CODES.items()}


class SecureChannelError(CardError):
    """Mutual authentication failed or a response was not authentic: the session is closed."""


class CardMismatchError(SecureChannelError):
    """The card in the reader is not the expected card (its KDD is another card's)."""


class IssuerLockedError(SecureChannelError):
    """6983: the card's issuer domain is locked after too many failed authentications (permanently)."""


class OutcomeUnknownError(SecureChannelError):
    """A command reached the terminal but its answer did not authenticate (no or a wrong R-MAC, a bare status word,
    a session the "card" says is gone): the card may or may not have executed it. The session is closed; only an
    authenticated read in a new session (e.g. :meth:`IssuerSession.status`) tells what happened."""


RandomSource = Callable[[int], bytes]


class StaticKeySource(Protocol):
    """Derives a card's static keys for the KDD it announced (e.g. :class:`jpki_remote.issuer_keys.IssuerKeys` —
    with an HSM the master key never leaves it)."""

    def card_keys(self, key_version: int, kdd: bytes) -> scp03.CardStaticKeys: ...


IssuerKeyMaterial = bytes | scp03.CardStaticKeys | StaticKeySource


@dataclass(frozen=True)
class PinStatus:
    applet: str
    fid: int
    tries_left: int
    max_tries: int
    reset_count: int = 0  # SET PINs the card executed on this key reference (authenticated: GET STATUS is R-MAC'd)

    @property
    def blocked(self) -> bool:
        return self.max_tries > 0 and self.tries_left == 0


@dataclass(frozen=True)
class CardStatus:
    lifecycle: str
    serial: str
    pending_keys: tuple[int, ...]
    pending_certificates: tuple[int, ...]
    active_jpki_keys: tuple[int, ...]
    pins: tuple[PinStatus, ...]

    def pin(self, applet: str, fid: int) -> PinStatus | None:
        return next((p for p in self.pins if p.applet == applet and p.fid == fid), None)


class IssuerSession:
    """One authenticated issuer session with one card. Use as a context manager or call :meth:`open`.

    ``keys`` is one of: the issuer master key (16 or 32 bytes; the card's static keys are diversified from it here —
    development and card manufacture), a :class:`~jpki_remote.card.scp03.CardStaticKeys` precomputed for the
    expected card (its KDD must be the card's, else :class:`CardMismatchError`), or a :class:`StaticKeySource` asked
    for the static keys of the KDD the card announces (the HSM path: the master key never reaches this process)."""

    def __init__(
        self,
        target: Transmit | object,
        keys: IssuerKeyMaterial,
        *,
        key_version: int = 0x00,
        level: int = scp03.LEVEL_FULL,
        chunk_size: int = SHORT_CHUNK,
        random: RandomSource = secrets.token_bytes,
        expected_kdd: bytes | None = None,
    ) -> None:
        if isinstance(keys, bytes | bytearray | memoryview):
            if len(keys) not in (16, 32):
                raise ValueError("the issuer master key is an AES-128 or AES-256 key (16 or 32 bytes)")
            keys = bytes(keys)
        elif not isinstance(keys, scp03.CardStaticKeys) and not callable(getattr(keys, "card_keys", None)):
            raise TypeError("keys: an issuer master key, CardStaticKeys or an object with card_keys(version, kdd)")
        if level & isd.REQUIRED_LEVEL != isd.REQUIRED_LEVEL:
            raise ValueError("issuer commands need at least C-MAC, C-DECRYPTION and R-MAC (level 0x13)")
        self._transmit = _as_transmit(target)
        self._keys = keys
        self._key_version = key_version
        self._level = level
        self._chunk = max(16, min(chunk_size, 65000))
        self._random = random
        self._expected_kdd = None if expected_kdd is None else bytes(expected_kdd)
        self._channel: scp03.SecureChannel | None = None
        self.kdd: bytes = b""

    # ---- session --------------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._channel is not None

    def open(self) -> Self:
        raise_for_sw(send(self._transmit, CommandApdu(0x00, 0xA4, 0x04, 0x0C, layout.AID_ISSUER)), "SELECT ISD")
        host_challenge = bytes(self._random(8))
        if len(host_challenge) != 8:
            raise ValueError("the random source must return the number of bytes asked for")
        resp = send(self._transmit, CommandApdu(0x80, isd.INS_INITIALIZE_UPDATE, self._key_version, 0x00,
                                                host_challenge, 256))
        if resp.sw == SW.AUTHENTICATION_METHOD_BLOCKED:
            raise IssuerLockedError(resp.sw, "issuer domain locked after too many failed authentications")
        body = raise_for_sw(resp, "INITIALIZE UPDATE").data
        if len(body) not in (29, 32) or body[11] != isd.SCP_ID:
            raise SecureChannelError(0, "not an SCP03 INITIALIZE UPDATE response")
        self.kdd = body[:10]
        if self._expected_kdd is not None and not hmac.compare_digest(self.kdd, self._expected_kdd):
            raise CardMismatchError(0, "another card is in the reader")
        card_challenge, card_cryptogram = body[13:21], body[21:29]
        keys = scp03.session_keys(self._static_keys(self.kdd), host_challenge, card_challenge)
        expected = scp03.cryptogram(keys, scp03.CARD_CRYPTOGRAM, host_challenge, card_challenge)
        if not hmac.compare_digest(card_cryptogram, expected):
            raise SecureChannelError(0, "card cryptogram wrong: not our card or wrong master key")
        channel = scp03.SecureChannel(keys, self._level)
        host_cryptogram = scp03.cryptogram(keys, scp03.HOST_CRYPTOGRAM, host_challenge, card_challenge)
        ext = channel.wrap(CommandApdu(0x80, isd.INS_EXTERNAL_AUTHENTICATE, self._level, 0x00, host_cryptogram),
                           first=True)
        raise_for_sw(send(self._transmit, ext), "EXTERNAL AUTHENTICATE")
        self._channel = channel
        return self

    def _static_keys(self, kdd: bytes) -> dict[str, bytes]:
        material = self._keys
        if isinstance(material, bytes):
            return scp03.diversify(material, kdd)
        if isinstance(material, scp03.CardStaticKeys):
            if not hmac.compare_digest(material.kdd, kdd):
                raise CardMismatchError(0, "another card is in the reader (static keys are for another KDD)")
            return material.as_dict()
        static = material.card_keys(self._key_version, kdd)
        if not hmac.compare_digest(static.kdd, kdd):
            raise SecureChannelError(0, "the key source derived keys for another KDD")
        return static.as_dict()

    def close(self) -> None:
        self._channel = None

    def command(self, ins: int, p1: int = 0, p2: int = 0, data: bytes = b"", *, ne: int | None = 256) -> bytes:
        """Send one protected issuer command; returns the (decrypted, authenticated) response data."""
        if self._channel is None:
            raise SecureChannelError(SW.SECURITY_STATUS_NOT_SATISFIED, "no open issuer session")
        wrapped = self._channel.wrap(CommandApdu(0x80, ins, p1, p2, bytes(data), ne))
        resp = send(self._transmit, wrapped)
        # From here on the command may have reached the card: an answer that does not authenticate says nothing
        # about what the card did (a terminal can forge any bare status word, 6982 included).
        if resp.sw == SW.SECURITY_STATUS_NOT_SATISFIED and not resp.data:
            self._channel = None
            raise OutcomeUnknownError(resp.sw, f"card closed the session (INS {ins:02X}), or so the terminal says")
        try:
            plain = self._channel.unwrap_response(resp.to_bytes())
        except ValueError as exc:
            self._channel = None
            raise OutcomeUnknownError(resp.sw, f"response to INS {ins:02X} not authentic: {exc}") from exc
        return raise_for_sw(ResponseApdu(plain.data, plain.sw), f"issuer INS {ins:02X}").data

    # ---- issuer commands ------------------------------------------------------------------------------------
    def store_file(self, applet: str, fid: int, content: bytes) -> None:
        """Write an EF of ``applet`` (STORE DATA, in chunks)."""
        head = bytes((layout.BY_NAME[applet].ref,)) + fid.to_bytes(2, "big")
        chunks = [content[i : i + self._chunk] for i in range(0, len(content), self._chunk)] or [b""]
        for block, chunk in enumerate(chunks):
            last = block == len(chunks) - 1
            self.command(isd.INS_STORE_DATA, 0x80 if last else 0x00, block & 0x7F, head + chunk)

    def set_personalised(self) -> None:
        self.command(isd.INS_SET_STATUS, isd.LIFECYCLE_CODES["personalised"], 0x00)

    def generate_key(self, applet: str, fid: int) -> rsa.RSAPublicKey:
        """Generate a key pair on the card (JPKI keys go to the pending slot) and return its public key."""
        data = self.command(isd.INS_GENERATE_KEY, layout.BY_NAME[applet].ref, fid)
        return parse_card_public_key(data)

    def read_public_key(self, applet: str, fid: int, *, pending: bool = False) -> rsa.RSAPublicKey:
        ref = layout.BY_NAME[applet].ref | (0x80 if pending else 0x00)
        return parse_card_public_key(self.command(isd.INS_READ_PUBLIC_KEY, ref, fid))

    def put_certificate(self, key_fid: int, der: bytes) -> None:
        """Write the certificate for the pending key ``key_fid`` (the card checks it matches the key)."""
        chunks = [der[i : i + self._chunk] for i in range(0, len(der), self._chunk)] or [b""]
        for block, chunk in enumerate(chunks):
            last = block == len(chunks) - 1
            self.command(isd.INS_PUT_CERTIFICATE, key_fid, (0x80 if last else 0x00) | (block & 0x7F), chunk)

    def commit(self) -> None:
        """Pending keys and certificates become active together (the old ones keep working until here)."""
        self.command(isd.INS_COMMIT)

    def discard(self) -> None:
        self.command(isd.INS_DISCARD)

    def set_pin(self, applet: str, fid: int, new_value: str | bytes | None) -> None:
        """Reset the retry counter of a key reference and (unless None) set a new value; it travels encrypted."""
        value = b"" if new_value is None else (new_value.encode("ascii") if isinstance(new_value, str)
                                                else bytes(new_value))
        self.command(isd.INS_SET_PIN, layout.BY_NAME[applet].ref, fid, value)

    def reset_holder_pin(self, which: str, new_value: str | bytes) -> None:
        """Reset one of the holder's passwords: ``sign``, ``auth``, ``juki``, ``common`` or ``text``."""
        applet, fid = layout.HOLDER_PINS[which]
        self.set_pin(applet, fid, new_value)

    def status(self) -> CardStatus:
        data = self.command(isd.INS_GET_STATUS)
        try:
            fields = {obj.tag: obj.value for obj in iterate(data, stop_at_filler=False)}
            pins = fields[0xC4]
            resets = fields.get(0xC6, b"")  # absent from cards before the reset counts
            reset_counts = {
                (resets[i], resets[i + 1]): int.from_bytes(resets[i + 2 : i + 6], "big")
                for i in range(0, len(resets) - 5, 6)
            }
            return CardStatus(
                lifecycle=LIFECYCLE_NAMES.get(fields[0xC0][0], "unknown"),
                serial=fields[0xC1].decode("ascii"),
                pending_keys=tuple(fields[0xC2]),
                pending_certificates=tuple(fields[0xC3]),
                active_jpki_keys=tuple(fields[0xC5]),
                pins=tuple(
                    PinStatus(layout.BY_REF[pins[i]].name, pins[i + 1], pins[i + 2], pins[i + 3],
                              reset_counts.get((pins[i], pins[i + 1]), 0))
                    for i in range(0, len(pins) - 3, 4)
                ),
            )
        except (KeyError, IndexError, TlvError, UnicodeDecodeError) as exc:
            raise SecureChannelError(0, f"malformed status: {exc}") from exc
