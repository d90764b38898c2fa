"""`VirtualCard`: a software My Number Card that answers APDUs byte for byte like the real one.

Use ``card.transmit(apdu) -> response`` (never raises), ``card.reset()`` (power cycle: security state, selection and
any secure-messaging session are lost; persistent state is kept) and ``card.atr``.

Persistence: when built with ``persist`` (see :class:`~jpki_remote.card.store.CardStore`), every command that changes
persistent state is written before its response is returned. A failed write answers ``6581`` and the card reloads
its last good state. A VERIFY first writes the decremented retry counter and only then compares (as real cards do
against tearing), so cutting power or failing the write never yields a free guess.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_remote.card import layout
from jpki_remote.card.apdu import SW, ApduError, CommandApdu, ResponseApdu, parse_command
from jpki_remote.card.layout import AppletDef
from jpki_remote.card.signing import compute_signature, generate_key, private_from_der
from jpki_remote.card.state import CardState

log = logging.getLogger(__name__)

KeyGenerator = Callable[[], rsa.RSAPrivateKey]

_ISO_INS = {0xA4, 0xB0, 0xB2, 0x20, 0x24}
_PROPRIETARY_INS = {0x2A, 0x32, 0x50}
_SM_INS = {0x82}  # plus issuer commands, known to the issuer domain


class PersistError(Exception):
    """The card state could not be written."""


class VirtualCard:
    """One card. Not thread-safe: a card is driven by one reader at a time (transports serialise access)."""

    def __init__(
        self,
        state: CardState,
        *,
        persist: Callable[[CardState], None] | None = None,
        reload: Callable[[], CardState] | None = None,
        keygen: KeyGenerator | None = None,
    ) -> None:
        self._state = state
        self._persist = persist
        self._reload = reload
        self.keygen: KeyGenerator = keygen or generate_key
        self._key_cache: dict[tuple[str, int], rsa.RSAPrivateKey] = {}
        self._dirty = False
        self._issuer = None  # IssuerDomain, created when the ISD is selected
        self.reset()

    # ---- public interface ------------------------------------------------------------------------------------
    @property
    def atr(self) -> bytes:
        return layout.ATR

    @property
    def card_id(self) -> str:
        return self._state.card_id

    @property
    def state(self) -> CardState:
        """The persistent state (for the issuer domain, the store and diagnostics; treat as read-only)."""
        return self._state

    def reset(self) -> None:
        """Cold/warm reset: nothing selected, no PIN verified, no secure-messaging session."""
        self._applet: AppletDef | None = None
        self._issuer_selected = False
        self._current_ef: int | None = None
        self._verified: set[int] = set()
        self._remaining = b""
        self._remaining_sw = int(SW.OK)
        if self._issuer is not None:
            self._issuer.close_session()

    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU and return the response APDU (data + SW1 SW2). Never raises."""
        try:
            return self._transmit(apdu).to_bytes()
        except Exception:  # last line of defence: a card never throws, it answers
            log.exception("virtual card %s: internal error", self._state.card_id)
            self._recover()
            return ResponseApdu.error(SW.NO_PRECISE_DIAGNOSIS).to_bytes()

    # ---- plumbing -------------------------------------------------------------------------------------------
    def _transmit(self, apdu: bytes) -> ResponseApdu:
        parsed = parse_command(apdu)
        if isinstance(parsed, ApduError):
            return ResponseApdu.error(parsed.sw)
        self._dirty = False
        if parsed.cla == 0x00 and parsed.ins == 0xC0:
            return self._get_response(parsed)
        self._remaining = b""
        try:
            response = self._dispatch(parsed)
        except ApduError as err:
            response = ResponseApdu.error(err.sw)
        except PersistError:
            self._recover()
            return ResponseApdu.error(SW.MEMORY_FAILURE)
        if self._dirty:
            try:
                self.commit_state()
            except PersistError:
                self._recover()
                return ResponseApdu.error(SW.MEMORY_FAILURE)
        limit = parsed.ne or 0
        if len(response.data) > limit:  # more than Le: hand it out with 61xx + GET RESPONSE (ISO 7816-4 §5.3.4)
            self._remaining = response.data[limit:]
            self._remaining_sw = response.sw
            return ResponseApdu(response.data[:limit], 0x6100 | (min(len(self._remaining), 256) & 0xFF))
        return response

    def _get_response(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.p1 or cmd.p2:
            return ResponseApdu.error(SW.INCORRECT_P1P2)
        if not self._remaining:
            return ResponseApdu.error(SW.CONDITIONS_NOT_SATISFIED)
        if cmd.data or cmd.ne is None:
            return ResponseApdu.error(SW.WRONG_LENGTH)
        chunk, self._remaining = self._remaining[: cmd.ne], self._remaining[cmd.ne :]
        if self._remaining:
            return ResponseApdu(chunk, 0x6100 | (min(len(self._remaining), 256) & 0xFF))
        return ResponseApdu(chunk, self._remaining_sw)

    def mark_dirty(self) -> None:
        self._dirty = True

    def commit_state(self) -> None:
        """Write the persistent state now (raises :class:`PersistError`)."""
        self._dirty = False
        if self._persist is None:
            return
        try:
            self._persist(self._state)
        except Exception as exc:
            raise PersistError(str(exc)) from exc

    def _recover(self) -> None:
        """After a failed write or an internal error: go back to the last state on disk, drop volatile state."""
        if self._reload is not None:
            try:
                self._state = self._reload()
            except Exception:
                log.exception("virtual card %s: reload failed", self._state.card_id)
        self._key_cache.clear()
        self.reset()

    def private_key(self, applet: str, fid: int) -> rsa.RSAPrivateKey | None:
        der = self._state.keys.get(applet, {}).get(fid)
        if der is None:
            return None
        cached = self._key_cache.get((applet, fid))
        if cached is None:
            cached = private_from_der(der)
            self._key_cache[(applet, fid)] = cached
        return cached

    def forget_cached_keys(self) -> None:
        self._key_cache.clear()

    # ---- dispatch -------------------------------------------------------------------------------------------
    def _dispatch(self, cmd: CommandApdu) -> ResponseApdu:
        cla, ins = cmd.cla, cmd.ins
        if cla == 0x00:
            if ins in _ISO_INS:
                return self._iso(cmd)
            if ins in _PROPRIETARY_INS or ins in _SM_INS:
                raise ApduError(SW.CLA_NOT_SUPPORTED)
            raise ApduError(SW.INS_NOT_SUPPORTED)
        if cla in (0x80, 0x84):
            if self._issuer_selected:
                return self._issuer_domain().process(cmd)
            if cla == 0x80 and ins == 0x2A:
                return self._compute_signature(cmd)
            if cla == 0x80 and ins == 0x32:
                return self._change_pin(cmd)
            if ins in _ISO_INS:
                raise ApduError(SW.CLA_NOT_SUPPORTED)
            raise ApduError(SW.INS_NOT_SUPPORTED)
        if cla & 0x80 == 0:
            if cla & 0x10:
                raise ApduError(SW.CHAINING_NOT_SUPPORTED)
            if cla & 0x0C:
                raise ApduError(SW.SECURE_MESSAGING_NOT_SUPPORTED)
            if cla & 0x03:
                raise ApduError(SW.LOGICAL_CHANNEL_NOT_SUPPORTED)
        raise ApduError(SW.CLA_NOT_SUPPORTED)

    def _iso(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.ins == 0xA4:
            return self._select(cmd)
        if self._issuer_selected:
            raise ApduError(SW.INS_NOT_SUPPORTED if cmd.ins != 0x20 else SW.REFERENCED_DATA_NOT_FOUND)
        if cmd.ins == 0xB0:
            return self._read_binary(cmd)
        if cmd.ins == 0xB2:
            return self._read_record(cmd)
        if cmd.ins == 0x20:
            return self._verify(cmd)
        return self._change_pin(cmd)  # 0x24

    def _issuer_domain(self):
        if self._issuer is None:
            from jpki_remote.card.issuer_domain import IssuerDomain

            self._issuer = IssuerDomain(self)
        return self._issuer

    # ---- SELECT ---------------------------------------------------------------------------------------------
    def _select(self, cmd: CommandApdu) -> ResponseApdu:
        p1, p2, data = cmd.p1, cmd.p2, cmd.data
        if p1 == 0x04:
            if p2 != 0x0C:
                raise ApduError(SW.INCORRECT_P1P2)
            if not 1 <= len(data) <= 16:
                raise ApduError(SW.WRONG_LENGTH)
            applet = layout.BY_AID.get(bytes(data))
            if applet is None and bytes(data) != layout.AID_ISSUER:
                raise ApduError(SW.FILE_NOT_FOUND)
            self.reset()  # re-selecting (any AP) drops the security state and any SM session
            self._applet = applet
            self._issuer_selected = applet is None
            return ResponseApdu(b"", SW.OK)
        if p1 == 0x02:
            if p2 != 0x0C:
                raise ApduError(SW.INCORRECT_P1P2)
            if len(data) != 2:
                raise ApduError(SW.WRONG_LENGTH)
            fid = int.from_bytes(data, "big")
            if self._applet is None or self._applet.kind(fid) is None:
                raise ApduError(SW.FILE_NOT_FOUND)
            self._current_ef = fid
            return ResponseApdu(b"", SW.OK)
        if p1 == 0x00:
            # The real card: `00 A4 00 00` is 6A86 at MF level and a no-op inside an AP; 3F00 is not found.
            if data:
                raise ApduError(SW.FILE_NOT_FOUND)
            if self._applet is None and not self._issuer_selected:
                raise ApduError(SW.INCORRECT_P1P2)
            return ResponseApdu(b"", SW.OK)
        raise ApduError(SW.INCORRECT_P1P2)

    def _resolve_sfi_or_current(self, p1: int) -> tuple[int, bool]:
        """For READ BINARY: (fid, by_sfi) from P1; raises the real card's status words."""
        if p1 & 0x80:
            if p1 & 0x60 or not p1 & 0x1F:
                raise ApduError(SW.INCORRECT_P1P2)
            return p1 & 0x1F, True
        if self._current_ef is None:
            raise ApduError(SW.COMMAND_NOT_ALLOWED_NO_EF)
        return self._current_ef, False

    def _check_read_access(self, applet: AppletDef, fid: int, *, records: bool) -> None:
        kind = applet.kind(fid)
        if kind is None:
            raise ApduError(SW.FILE_NOT_FOUND)
        if kind != "ef" or applet.efs[fid].records != records:
            raise ApduError(SW.COMMAND_INCOMPATIBLE_WITH_FILE)
        rule = applet.efs[fid].read
        if rule and not (rule & self._verified):
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)

    # ---- READ BINARY / READ RECORD ----------------------------------------------------------------------------
    def _read_binary(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.data or cmd.ne is None:
            raise ApduError(SW.WRONG_LENGTH)
        if self._applet is None:
            raise ApduError(SW.COMMAND_NOT_ALLOWED_NO_EF if not cmd.p1 & 0x80 else SW.FILE_NOT_FOUND)
        fid, by_sfi = self._resolve_sfi_or_current(cmd.p1)
        offset = cmd.p2 if by_sfi else cmd.p1p2 & 0x7FFF
        self._check_read_access(self._applet, fid, records=False)
        if by_sfi:
            self._current_ef = fid
        content = self._state.file(self._applet.name, fid) or b""
        if offset >= len(content):
            raise ApduError(SW.WRONG_P1P2_OFFSET)
        return ResponseApdu(content[offset : offset + cmd.ne], SW.OK)

    def _read_record(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.data or cmd.ne is None:
            raise ApduError(SW.WRONG_LENGTH)
        if cmd.p2 & 0x07 != 0x04 or cmd.p1 == 0:
            raise ApduError(SW.INCORRECT_P1P2)
        if self._applet is None:
            raise ApduError(SW.COMMAND_NOT_ALLOWED_NO_EF)
        sfi = cmd.p2 >> 3
        if sfi:
            fid = sfi
        elif self._current_ef is None:
            raise ApduError(SW.COMMAND_NOT_ALLOWED_NO_EF)
        else:
            fid = self._current_ef
        self._check_read_access(self._applet, fid, records=True)
        if sfi:
            self._current_ef = fid
        recs = self._state.records.get(self._applet.name, {}).get(fid, [])
        if cmd.p1 > len(recs):
            raise ApduError(SW.RECORD_NOT_FOUND)
        record = recs[cmd.p1 - 1]
        if cmd.ne < len(record) and len(record) <= 256:
            raise ApduError(SW.WRONG_LE | (len(record) & 0xFF))
        return ResponseApdu(record[: cmd.ne], SW.OK)

    # ---- VERIFY / CHANGE ------------------------------------------------------------------------------------
    def _key_reference(self, p2: int, kind: str) -> int:
        """P2 = 80 (current EF) or 80|SFI (named directly). Returns the fid, which must be of ``kind``."""
        if p2 == 0x80:
            fid = self._current_ef
        elif p2 & 0x80 and not p2 & 0x60:
            fid = p2 & 0x1F
        else:
            raise ApduError(SW.INCORRECT_P1P2)
        if self._applet is None or fid is None or self._applet.kind(fid) != kind:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        return fid

    def _verify(self, cmd: CommandApdu) -> ResponseApdu:
        if cmd.p1 != 0x00:
            raise ApduError(SW.INCORRECT_P1P2)
        fid = self._key_reference(cmd.p2, "pin")
        assert self._applet is not None
        pin = self._state.pin(self._applet.name, fid)
        if pin is None:  # key reference not personalised
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        if not cmd.data:  # retry query: answers 63Cx even when already verified
            if pin.max_tries is None:
                return ResponseApdu(b"", SW.WARNING_NO_RETRY_LIMIT)
            return ResponseApdu(b"", SW.wrong_pin(pin.tries_left))
        if pin.blocked:
            self._verified.discard(fid)
            raise ApduError(SW.REFERENCE_DATA_BLOCKED)
        if pin.max_tries is not None:
            # decrement first and make it durable, then compare (anti-tearing)
            pin.tries_left -= 1
            self.commit_state()
        if hmac.compare_digest(bytes(cmd.data), pin.value):
            if pin.max_tries is not None:
                pin.tries_left = pin.max_tries
                self.mark_dirty()
            self._verified.add(fid)
            return ResponseApdu(b"", SW.OK)
        self._verified.discard(fid)
        if pin.max_tries is None:
            return ResponseApdu(b"", SW.WARNING_NO_RETRY_LIMIT)
        return ResponseApdu(b"", SW.wrong_pin(pin.tries_left))

    def _change_pin(self, cmd: CommandApdu) -> ResponseApdu:
        applet = self._applet
        if applet is None or applet.change_ins is None:
            raise ApduError(SW.INS_NOT_SUPPORTED)
        cla, ins, p1 = applet.change_ins
        if (cmd.cla, cmd.ins) != (cla, ins):
            raise ApduError(SW.INS_NOT_SUPPORTED)
        if cmd.p1 != p1:
            raise ApduError(SW.INCORRECT_P1P2)
        fid = self._key_reference(cmd.p2, "pin")
        definition = applet.pins[fid]
        pin = self._state.pin(applet.name, fid)
        if pin is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        if pin.blocked:
            raise ApduError(SW.REFERENCE_DATA_BLOCKED)
        if not definition.changeable or fid not in self._verified:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        if not cmd.data:
            raise ApduError(SW.WRONG_LENGTH)
        if not definition.format.accepts(bytes(cmd.data)):
            raise ApduError(SW.WRONG_DATA)
        pin.value = bytes(cmd.data)
        pin.tries_left = definition.max_tries
        self.mark_dirty()
        return ResponseApdu(b"", SW.OK)

    # ---- COMPUTE DIGITAL SIGNATURE ----------------------------------------------------------------------------
    def _compute_signature(self, cmd: CommandApdu) -> ResponseApdu:
        applet = self._applet
        if applet is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        if cmd.p1 > 0x05:
            raise ApduError(SW.INCORRECT_P1P2)
        if cmd.p2 == 0x00:
            if applet.default_key is None:
                raise ApduError(SW.INCORRECT_P1P2)
            fid = applet.default_key
        else:
            fid = self._key_reference(cmd.p2, "key")
        key_def = applet.keys[fid]
        if key_def.needs is not None and key_def.needs not in self._verified:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED)
        if not cmd.data:
            raise ApduError(SW.WRONG_LENGTH)
        if cmd.ne is None or cmd.ne < 256:
            raise ApduError(SW.WRONG_LE)  # 6C00: the signature is 256 bytes
        key = self.private_key(applet.name, fid)
        if key is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        return ResponseApdu(compute_signature(key, cmd.p1, bytes(cmd.data)), SW.OK)

    # ---- used by the issuer domain ---------------------------------------------------------------------------
    @property
    def verified(self) -> frozenset[int]:
        return frozenset(self._verified)
