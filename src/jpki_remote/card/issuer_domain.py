"""Card side of the issuer commands: the issuer security domain (AID ``A0 00 00 01 51 00 00 00``).

Our design (the real card's issuer commands are not public), GlobalPlatform SCP03 style:

1. ``80 50 KVN 00 08 <host challenge> 00`` INITIALIZE UPDATE -> KDD(10) ‖ KVN 03 30 ‖ card challenge(8) ‖
   card cryptogram(8).
2. ``84 82 SL 00 10 <host cryptogram> <C-MAC>`` EXTERNAL AUTHENTICATE opens the session at security level SL.
3. Issuer commands, CLA ``84`` (all need a session with at least C-MAC + C-DECRYPTION + R-MAC, else ``6982``):

| INS | P1 | P2 | data | effect |
|---|---|---|---|---|
| E2 STORE DATA | 80 last / 00 more | block | AP ref, FID, chunk | write an EF (not the JPKI user certs) |
| F0 SET STATUS | 0F | 00 | – | lifecycle -> personalised |
| F1 GENERATE KEY | AP ref | key FID | – | JPKI key -> pending slot; AP key (blank card) -> active |
| F2 PUT CERTIFICATE | key FID | 80 last + block | chunk | certificate for the pending key (must match it) |
| F3 COMMIT | 00 | 00 | – | pending keys + certificates become active together |
| F4 DISCARD | 00 | 00 | – | drop pending keys and certificates |
| F5 SET PIN | AP ref | PIN FID | new value or empty | reset the retry counter, set the value (C-ENC) |
| F6 READ PUBLIC KEY | AP ref (+80 pending) | key FID | – | 90/91 public key of an active or pending key |
| F7 GET STATUS | 00 | 00 | – | lifecycle, pending slots, PIN counters and reset counts (TLV) |

A bad C-MAC (tampered or replayed command) ends the session: that command and every later one answer ``6982``
until a new INITIALIZE UPDATE. So does an unprotected (CLA ``80``) issuer command sent while a session is open.
Re-selecting any AP or resetting the card also ends it.

Every answer inside a session carries an R-MAC, error status words included (not so in GlobalPlatform, where errors
travel bare): the host must be able to tell the card's "refused" from a terminal's forged one (finding S-4). GET STATUS
reports, per key reference, how many times SET PIN reset it (tag C6: AP ref, FID, 4-byte count), so after an answer
that did not authenticate the host can read in a new session whether the reset took effect.

Retry limit (like a GlobalPlatform card's authentication counter): every INITIALIZE UPDATE that returns a card
cryptogram counts as a failed authentication — written to the card state *before* the answer leaves the card, so
pulling the card mid-handshake gains nothing — and only a successful EXTERNAL AUTHENTICATE resets the count to 0.
After :data:`ISSUER_AUTH_LIMIT` (10) failures in a row the issuer domain is locked **permanently**: every command to
it (INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, issuer commands) answers ``6983`` and no command resets it. The holder
applets keep working (PINs, certificates, signatures), but the card can no longer be renewed or have a PIN reset —
it must be replaced at the counter. Malformed INITIALIZE UPDATEs (wrong P1/P2/length, unknown key version) are
refused before counting; an abandoned handshake (the host found the card cryptogram wrong: another card or another
master key) counts.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_remote.card import layout, scp03
from jpki_remote.card.apdu import SW, ApduError, CommandApdu, ResponseApdu
from jpki_remote.card.signing import card_public_key, private_from_der, private_to_der
from jpki_remote.card.state import LIFECYCLE_BLANK, LIFECYCLE_PERSONALISED, PinRecord
from jpki_remote.card.tlv import tlv

if TYPE_CHECKING:
    from jpki_remote.card.virtual import VirtualCard

INS_INITIALIZE_UPDATE = 0x50
INS_EXTERNAL_AUTHENTICATE = 0x82
INS_STORE_DATA = 0xE2
INS_SET_STATUS = 0xF0
INS_GENERATE_KEY = 0xF1
INS_PUT_CERTIFICATE = 0xF2
INS_COMMIT = 0xF3
INS_DISCARD = 0xF4
INS_SET_PIN = 0xF5
INS_READ_PUBLIC_KEY = 0xF6
INS_GET_STATUS = 0xF7
ISSUER_INS = {INS_STORE_DATA, INS_SET_STATUS, INS_GENERATE_KEY, INS_PUT_CERTIFICATE, INS_COMMIT, INS_DISCARD,
              INS_SET_PIN, INS_READ_PUBLIC_KEY, INS_GET_STATUS}
REQUIRED_LEVEL = scp03.C_MAC | scp03.C_DECRYPTION | scp03.R_MAC
SCP_ID = 0x03
SCP_I_PARAM = 0x30  # R-MAC and R-ENC supported, random card challenge
MAX_OBJECT = 65535
LIFECYCLE_CODES = {LIFECYCLE_BLANK: 0x07, LIFECYCLE_PERSONALISED: 0x0F}
ISSUER_AUTH_LIMIT = 10  # failed issuer authentications in a row before the issuer domain locks for good


class IssuerDomain:
    """Issuer security domain of one :class:`VirtualCard` (volatile: the session dies with a reset)."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self._pending_auth: tuple[scp03.SessionKeys, bytes, bytes] | None = None
        self._channel: scp03.SecureChannel | None = None
        self._buffer_key: tuple[int, ...] | None = None
        self._buffer = bytearray()
        self._next_block = 0

    def close_session(self) -> None:
        self._pending_auth = None
        self._channel = None
        self._reset_buffer()

    def _reset_buffer(self) -> None:
        self._buffer_key = None
        self._buffer = bytearray()
        self._next_block = 0

    @property
    def state(self):
        return self.card.state

    # ---- entry ----------------------------------------------------------------------------------------------
    @property
    def locked(self) -> bool:
        return self.state.issuer_auth_failures >= ISSUER_AUTH_LIMIT

    def process(self, cmd: CommandApdu) -> ResponseApdu:
        # locked: nothing but the EXTERNAL AUTHENTICATE of the very attempt that reached the limit gets through
        if self.locked and self._pending_auth is None and cmd.cla in (0x80, 0x84) and (
                cmd.ins in ISSUER_INS or cmd.ins in (INS_INITIALIZE_UPDATE, INS_EXTERNAL_AUTHENTICATE)):
            self.close_session()
            raise ApduError(SW.AUTHENTICATION_METHOD_BLOCKED)
        if cmd.cla == 0x80 and cmd.ins == INS_INITIALIZE_UPDATE:
            return self._initialize_update(cmd)
        if cmd.cla == 0x84 and cmd.ins == INS_EXTERNAL_AUTHENTICATE:
            return self._external_authenticate(cmd)
        if cmd.ins not in ISSUER_INS:
            raise ApduError(SW.INS_NOT_SUPPORTED)
        channel = self._channel
        if cmd.cla != 0x84 or channel is None or channel.level & REQUIRED_LEVEL != REQUIRED_LEVEL:
            # anything but a protected command ends an open session (or a half-open one): a terminal that slips a
            # plain issuer command into a session gets 6982, and so does every later command of that session
            self.close_session()
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        try:
            inner = channel.unwrap(cmd)
        except ApduError:
            self.close_session()  # a bad MAC (tampered or replayed command) ends the session
            raise
        try:
            response = self._issuer_command(inner)
        except ApduError as err:
            response = ResponseApdu(b"", err.sw)
        return channel.wrap_response(response)

    # ---- mutual authentication ------------------------------------------------------------------------------
    def _initialize_update(self, cmd: CommandApdu) -> ResponseApdu:
        self.close_session()
        if self.locked:
            raise ApduError(SW.AUTHENTICATION_METHOD_BLOCKED)
        if cmd.p2 != 0x00:
            raise ApduError(SW.INCORRECT_P1P2)
        if cmd.p1 not in (0x00, self.state.key_version):
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        if len(cmd.data) != 8:
            raise ApduError(SW.WRONG_LENGTH)
        # counted before a cryptogram leaves the card (the write happens before the answer); refunded on success
        self.state.issuer_auth_failures += 1
        self.card.mark_dirty()
        host_challenge = bytes(cmd.data)
        card_challenge = secrets.token_bytes(8)
        keys = scp03.session_keys(self.state.scp_keys, host_challenge, card_challenge)
        card_cryptogram = scp03.cryptogram(keys, scp03.CARD_CRYPTOGRAM, host_challenge, card_challenge)
        self._pending_auth = (keys, host_challenge, card_challenge)
        body = (self.state.kdd + bytes((self.state.key_version, SCP_ID, SCP_I_PARAM)) + card_challenge
                + card_cryptogram)
        return ResponseApdu(body, SW.OK)

    def _external_authenticate(self, cmd: CommandApdu) -> ResponseApdu:
        pending, self._pending_auth = self._pending_auth, None
        if pending is None:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED)
        keys, host_challenge, card_challenge = pending
        if cmd.p1 not in scp03.VALID_LEVELS or cmd.p1 & scp03.C_MAC == 0 or cmd.p2 != 0x00:
            raise ApduError(SW.INCORRECT_P1P2)
        if len(cmd.data) != 16:
            raise ApduError(SW.WRONG_LENGTH)
        channel = scp03.SecureChannel(keys, cmd.p1)
        inner = channel.unwrap(cmd, first=True)  # 6982 on a bad MAC
        expected = scp03.cryptogram(keys, scp03.HOST_CRYPTOGRAM, host_challenge, card_challenge)
        if not hmac.compare_digest(bytes(inner.data), expected):
            raise ApduError(SW.WARNING_NO_RETRY_LIMIT)  # 6300: host cryptogram wrong (GlobalPlatform)
        self._channel = channel
        if self.state.issuer_auth_failures:
            self.state.issuer_auth_failures = 0
            self.card.mark_dirty()
        return ResponseApdu(b"", SW.OK)

    # ---- issuer commands (already unwrapped) ------------------------------------------------------------------
    def _issuer_command(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.ins != INS_STORE_DATA and cmd.ins != INS_PUT_CERTIFICATE:
            self._reset_buffer()
        handler = {
            INS_STORE_DATA: self._store_data,
            INS_SET_STATUS: self._set_status,
            INS_GENERATE_KEY: self._generate_key,
            INS_PUT_CERTIFICATE: self._put_certificate,
            INS_COMMIT: self._commit,
            INS_DISCARD: self._discard,
            INS_SET_PIN: self._set_pin,
            INS_READ_PUBLIC_KEY: self._read_public_key,
            INS_GET_STATUS: self._get_status,
        }[cmd.ins]
        return handler(cmd)

    def _accumulate(self, key: tuple[int, ...], block: int, chunk: bytes) -> None:
        if block == 0:
            self._buffer_key, self._buffer, self._next_block = key, bytearray(), 0
        if self._buffer_key != key or block != self._next_block:
            self._reset_buffer()
            raise ApduError(SW.INCORRECT_P1P2, "block out of sequence")
        if len(self._buffer) + len(chunk) > MAX_OBJECT:
            self._reset_buffer()
            raise ApduError(SW.NOT_ENOUGH_MEMORY)
        self._buffer += chunk
        self._next_block = (self._next_block + 1) & 0x7F

    def _store_data(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.p1 not in (0x00, 0x80) or cmd.p2 > 0x7F:
            raise ApduError(SW.INCORRECT_P1P2)
        if len(cmd.data) < 3:
            raise ApduError(SW.WRONG_LENGTH)
        applet = layout.BY_REF.get(cmd.data[0])
        fid = int.from_bytes(cmd.data[1:3], "big")
        if applet is None or fid not in applet.efs:
            raise ApduError(SW.FILE_NOT_FOUND)
        if not applet.efs[fid].issuer_writable:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "JPKI user certificates change only through COMMIT")
        self._accumulate((INS_STORE_DATA, applet.ref, fid), cmd.p2, bytes(cmd.data[3:]))
        if cmd.p1 == 0x80:
            content = bytes(self._buffer)
            self._reset_buffer()
            if applet.efs[fid].records:
                self.state.records.setdefault(applet.name, {})[fid] = [content] if content else []
            else:
                self.state.set_file(applet.name, fid, content)
            self.card.mark_dirty()
        return ResponseApdu(b"", SW.OK)

    def _set_status(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.p1 != LIFECYCLE_CODES[LIFECYCLE_PERSONALISED] or cmd.p2 != 0x00:
            raise ApduError(SW.INCORRECT_P1P2)
        if self.state.lifecycle != LIFECYCLE_PERSONALISED:
            self.state.lifecycle = LIFECYCLE_PERSONALISED
            self.card.mark_dirty()
        return ResponseApdu(b"", SW.OK)

    def _key_def(self, ap_ref: int, fid: int) -> tuple[layout.AppletDef, layout.KeyDef]:
        applet = layout.BY_REF.get(ap_ref & 0x7F)
        if applet is None or fid not in applet.keys:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        return applet, applet.keys[fid]

    def _generate_key(self, cmd: CommandApdu) -> ResponseApdu:
        applet, key_def = self._key_def(cmd.p1, cmd.p2)
        if cmd.data:
            raise ApduError(SW.WRONG_LENGTH)
        if key_def.pending_capable:
            key = self.card.keygen()
            self.state.pending_keys[key_def.fid] = private_to_der(key)
            self.state.pending_certs.pop(key_def.fid, None)
        else:
            if self.state.lifecycle != LIFECYCLE_BLANK:
                raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "AP keys are generated only before personalisation")
            key = self.card.keygen()
            self.state.keys.setdefault(applet.name, {})[key_def.fid] = private_to_der(key)
            self.card.forget_cached_keys()
        self.card.mark_dirty()
        return ResponseApdu(card_public_key(key.public_key()), SW.OK)

    def _put_certificate(self, cmd: CommandApdu) -> ResponseApdu:
        fid = cmd.p1
        if fid not in layout.JPKI_KEY_CERT:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        pending = self.state.pending_keys.get(fid)
        if pending is None:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "no pending key")
        self._accumulate((INS_PUT_CERTIFICATE, fid), cmd.p2 & 0x7F, bytes(cmd.data))
        if not cmd.p2 & 0x80:
            return ResponseApdu(b"", SW.OK)
        der = bytes(self._buffer)
        self._reset_buffer()
        try:
            cert = x509.load_der_x509_certificate(der)
            cert_key = cert.public_key()
        except Exception as exc:
            raise ApduError(SW.WRONG_DATA, "not a certificate") from exc
        pending_public = private_from_der(pending).public_key().public_numbers()
        if not isinstance(cert_key, rsa.RSAPublicKey) or cert_key.public_numbers() != pending_public:
            raise ApduError(SW.WRONG_DATA, "certificate is not for the pending key")
        self.state.pending_certs[fid] = der
        self.card.mark_dirty()
        return ResponseApdu(b"", SW.OK)

    def _commit(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.p1 or cmd.p2:
            raise ApduError(SW.INCORRECT_P1P2)
        state = self.state
        if not state.pending_keys or set(state.pending_keys) != set(state.pending_certs):
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "every pending key needs its certificate")
        availability = bytearray(state.file("jpki", layout.JPKI_CERT_AVAILABILITY) or b"\x00\x00\x00")
        for fid, der in state.pending_keys.items():
            state.keys.setdefault("jpki", {})[fid] = der
            state.set_file("jpki", layout.JPKI_KEY_CERT[fid], state.pending_certs[fid])
            availability[0 if fid == layout.JPKI_SIGN_KEY else 1] = 0x8F
        state.set_file("jpki", layout.JPKI_CERT_AVAILABILITY, bytes(availability))
        state.pending_keys.clear()
        state.pending_certs.clear()
        self.card.forget_cached_keys()
        self.card.mark_dirty()  # one atomic write: keys, certificates and availability change together
        return ResponseApdu(b"", SW.OK)

    def _discard(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.p1 or cmd.p2:
            raise ApduError(SW.INCORRECT_P1P2)
        if self.state.pending_keys or self.state.pending_certs:
            self.state.pending_keys.clear()
            self.state.pending_certs.clear()
            self.card.mark_dirty()
        return ResponseApdu(b"", SW.OK)

    def _set_pin(self, cmd: CommandApdu) -> ResponseApdu:
        applet = layout.BY_REF.get(cmd.p1)
        if applet is None or cmd.p2 not in applet.pins:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        definition = applet.pins[cmd.p2]
        if not definition.issuer_resettable:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED)
        value = bytes(cmd.data)
        current = self.state.pin(applet.name, cmd.p2)
        resets = (current.reset_count if current is not None else 0) + 1
        if not value:
            if current is None:
                raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no PIN to unblock")
            current.tries_left = definition.max_tries
            current.reset_count = resets
        elif not definition.format.accepts(value):
            raise ApduError(SW.WRONG_DATA)
        else:
            self.state.pins.setdefault(applet.name, {})[cmd.p2] = PinRecord(
                value, definition.max_tries, definition.max_tries, resets)
        self.card.mark_dirty()
        return ResponseApdu(b"", SW.OK)

    def _read_public_key(self, cmd: CommandApdu) -> ResponseApdu:
        applet, key_def = self._key_def(cmd.p1, cmd.p2)
        if cmd.p1 & 0x80:
            der = self.state.pending_keys.get(key_def.fid) if key_def.pending_capable else None
        else:
            der = self.state.keys.get(applet.name, {}).get(key_def.fid)
        if der is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        return ResponseApdu(card_public_key(private_from_der(der).public_key()), SW.OK)

    def _get_status(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.p1 or cmd.p2:
            raise ApduError(SW.INCORRECT_P1P2)
        state = self.state
        pins = resets = b""
        for applet in layout.APPLETS:
            for fid, pin in sorted(state.pins.get(applet.name, {}).items()):
                pins += bytes((applet.ref, fid, max(pin.tries_left, 0), pin.max_tries or 0))
                resets += bytes((applet.ref, fid)) + (pin.reset_count & 0xFFFFFFFF).to_bytes(4, "big")
        body = (
            tlv(0xC0, bytes((LIFECYCLE_CODES.get(state.lifecycle, 0),)))
            + tlv(0xC1, state.serial.encode("ascii"))
            + tlv(0xC2, bytes(sorted(state.pending_keys)))
            + tlv(0xC3, bytes(sorted(state.pending_certs)))
            + tlv(0xC4, pins)
            + tlv(0xC5, bytes(sorted(state.keys.get("jpki", {}))))
            + tlv(0xC6, resets)
        )
        return ResponseApdu(body, SW.OK)
