"""GlobalPlatform SCP03 cryptography (Amendment D), shared by the card and the issuer host.

- :func:`kdf`: NIST SP 800-108 KDF in counter mode with AES-CMAC as PRF, 8-bit counter placed between a fixed prefix
  and suffix (the layout GlobalPlatformPro's ``GPCrypto.scp03_kdf`` uses).
- :func:`derive`: the Amendment D form — label 11×00 ‖ constant ‖ 00 ‖ L (16 bit) ‖ i ‖ context.
- :func:`diversify`: per-card static keys from an issuer master key over the card's 10-byte KDD ("KDF3" in
  GlobalPlatformPro: prefix empty, suffix ``00000001 00`` / ``…02 00`` / ``…03 00`` ‖ KDD);
  :func:`diversify_with` takes the AES-CMAC as a function, so the master key can stay in an HSM.
  :class:`CardStaticKeys` carries one card's result.
- :class:`SecureChannel`: one session's state — session keys, MAC chaining value, encryption counter — with the
  wrap/unwrap operations for both ends (C-MAC, C-ENC, R-MAC, R-ENC). Unlike Amendment D, error status words are
  R-MAC'd too, so the host can tell a card's refusal from a terminal's forgery.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from jpki_remote.card.apdu import SW, ApduError, CommandApdu, ResponseApdu

# derivation constants (Amendment D §6.2.1)
CARD_CRYPTOGRAM = 0x00
HOST_CRYPTOGRAM = 0x01
S_ENC = 0x04
S_MAC = 0x06
S_RMAC = 0x07
# diversification suffix prefixes ("KDF3")
DIVERSIFY_CONSTANTS = {"enc": bytes.fromhex("0000000100"), "mac": bytes.fromhex("0000000200"),
                       "dek": bytes.fromhex("0000000300")}

# security level bits
C_MAC = 0x01
C_DECRYPTION = 0x02
R_MAC = 0x10
R_ENCRYPTION = 0x20
LEVEL_FULL = C_MAC | C_DECRYPTION | R_MAC | R_ENCRYPTION  # 0x33
VALID_LEVELS = {0x00, 0x01, 0x03, 0x11, 0x13, 0x31, 0x33}

MAC_LENGTH = 8
BLOCK = 16


def aes_cmac(key: bytes, data: bytes) -> bytes:
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


Prf = Callable[[bytes], bytes]


def kdf(key: bytes, prefix: bytes, suffix: bytes, nbytes: int) -> bytes:
    """SP 800-108 counter mode, PRF = AES-CMAC: K(i) = CMAC(key, prefix ‖ i ‖ suffix), i = 1, 2, … (8-bit)."""
    return kdf_with(lambda data: aes_cmac(key, data), prefix, suffix, nbytes)


def kdf_with(prf: Prf, prefix: bytes, suffix: bytes, nbytes: int) -> bytes:
    """:func:`kdf` with the AES-CMAC computed by ``prf`` (e.g. inside an HSM that holds the key)."""
    out = b""
    i = 1
    while len(out) < nbytes:
        block = bytes(prf(prefix + bytes((i,)) + suffix))
        if len(block) != BLOCK:
            raise ValueError("the PRF must return one 16-byte AES-CMAC")
        out += block
        i += 1
    return out[:nbytes]


def derive(key: bytes, constant: int, context: bytes, bits: int) -> bytes:
    """Amendment D derivation: label (11 × 00) ‖ constant ‖ 00 ‖ L ‖ i ‖ context."""
    prefix = bytes(11) + bytes((constant, 0x00)) + bits.to_bytes(2, "big")
    return kdf(key, prefix, context, bits // 8)


def diversify(master: bytes, kdd: bytes) -> dict[str, bytes]:
    """The card's static ENC/MAC/DEK keys from the issuer master key and the card's KDD (same length as master)."""
    if len(master) not in (16, 24, 32):
        raise ValueError("an AES master key is 16, 24 or 32 bytes")
    return diversify_with(lambda data: aes_cmac(master, data), kdd, len(master))


def diversify_with(prf: Prf, kdd: bytes, size: int) -> dict[str, bytes]:
    """:func:`diversify` with AES-CMAC under the master key computed by ``prf`` — the master key itself may stay in
    an HSM (``C_Sign`` with ``CKM_AES_CMAC``). ``size``: the master key's length, which is also the keys' length."""
    if size not in (16, 24, 32):
        raise ValueError("an AES master key is 16, 24 or 32 bytes")
    return {name: kdf_with(prf, b"", const + bytes(kdd), size) for name, const in DIVERSIFY_CONSTANTS.items()}


@dataclass(frozen=True, repr=False)
class CardStaticKeys:
    """One card's static SCP03 keys (diversified for ``kdd`` from master key version ``key_version``): what an issuer
    session needs instead of the master key. The repr shows no key material."""

    enc: bytes
    mac: bytes
    dek: bytes
    kdd: bytes
    key_version: int = 0

    def __post_init__(self) -> None:
        if len(self.enc) not in (16, 24, 32) or len(self.mac) != len(self.enc) or len(self.dek) != len(self.enc):
            raise ValueError("static keys are three AES keys of one length (16, 24 or 32 bytes)")

    @classmethod
    def from_dict(cls, keys: dict[str, bytes], kdd: bytes, key_version: int = 0) -> CardStaticKeys:
        return cls(bytes(keys["enc"]), bytes(keys["mac"]), bytes(keys["dek"]), bytes(kdd), key_version)

    def as_dict(self) -> dict[str, bytes]:
        return {"enc": self.enc, "mac": self.mac, "dek": self.dek}

    def __repr__(self) -> str:
        return f"<CardStaticKeys kdd={self.kdd.hex()} version={self.key_version} kcv={key_check_value(self.enc).hex()}>"


def key_check_value(key: bytes) -> bytes:
    """KCV: first 3 bytes of AES(key, 16 × 01)."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - single block, by definition
    return (enc.update(b"\x01" * 16) + enc.finalize())[:3]


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 method 2 to a 16-byte boundary."""
    data = data + b"\x80"
    return data + bytes((-len(data)) % BLOCK)


def unpad(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        raise ValueError("bad padding")
    return stripped[:-1]


def _aes_ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - IV derivation, one block
    return enc.update(block) + enc.finalize()


def _cbc(key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


@dataclass
class SessionKeys:
    enc: bytes
    mac: bytes
    rmac: bytes


def session_keys(static: dict[str, bytes], host_challenge: bytes, card_challenge: bytes) -> SessionKeys:
    context = host_challenge + card_challenge
    bits = len(static["enc"]) * 8
    return SessionKeys(
        enc=derive(static["enc"], S_ENC, context, bits),
        mac=derive(static["mac"], S_MAC, context, bits),
        rmac=derive(static["mac"], S_RMAC, context, bits),
    )


def cryptogram(keys: SessionKeys, constant: int, host_challenge: bytes, card_challenge: bytes) -> bytes:
    return derive(keys.mac, constant, host_challenge + card_challenge, 64)


def _lc_bytes(n: int) -> bytes:
    return bytes((n,)) if n <= 255 else b"\x00" + n.to_bytes(2, "big")


class SecureChannel:
    """The state of one SCP03 session (identical on both ends; one side wraps what the other unwraps)."""

    def __init__(self, keys: SessionKeys, level: int) -> None:
        self.keys = keys
        self.level = level
        self.chaining = bytes(BLOCK)
        self.counter = 0  # encryption counter: incremented before every command after EXTERNAL AUTHENTICATE

    # -- MAC over a command as transmitted: chaining ‖ CLA INS P1 P2 Lc' ‖ data' (Lc' counts the MAC) --
    def _command_mac(self, cla: int, ins: int, p1: int, p2: int, body: bytes) -> bytes:
        header = bytes((cla, ins, p1, p2)) + _lc_bytes(len(body) + MAC_LENGTH)
        full = aes_cmac(self.keys.mac, self.chaining + header + body)
        self.chaining = full
        return full[:MAC_LENGTH]

    def _iv(self, *, response: bool) -> bytes:
        block = self.counter.to_bytes(BLOCK, "big")
        if response:
            block = b"\x80" + block[1:]
        return _aes_ecb(self.keys.enc, block)

    # ---- host side ----
    def wrap(self, cmd: CommandApdu, *, first: bool = False) -> CommandApdu:
        """Protect a command (CLA becomes 84). ``first`` for EXTERNAL AUTHENTICATE (MAC only, no counter)."""
        data = cmd.data
        if not first:
            self.counter += 1
            if self.level & C_DECRYPTION and data:
                data = _cbc(self.keys.enc, self._iv(response=False), pad(data), encrypt=True)
        cla = cmd.cla | 0x04
        mac = self._command_mac(cla, cmd.ins, cmd.p1, cmd.p2, data)
        return CommandApdu(cla, cmd.ins, cmd.p1, cmd.p2, data + mac, cmd.ne)

    def unwrap_response(self, raw: bytes) -> ResponseApdu:
        """Check R-MAC and decrypt; raises ``ValueError`` if the response is not authentic.

        With R-MAC every answer must carry one, error status words included (see :meth:`wrap_response`): a bare
        status word may come from the terminal rather than the card, so it proves nothing about the outcome."""
        resp = ResponseApdu.from_bytes(raw)
        if not self.level & R_MAC:
            return resp
        if len(resp.data) < MAC_LENGTH:
            raise ValueError("response has no R-MAC")
        body, mac = resp.data[:-MAC_LENGTH], resp.data[-MAC_LENGTH:]
        expected = aes_cmac(self.keys.rmac, self.chaining + body + raw[-2:])[:MAC_LENGTH]
        if not hmac.compare_digest(mac, expected):
            raise ValueError("R-MAC mismatch")
        if body and not _protected_sw(resp.sw):
            raise ValueError("error answers carry no data")
        if body and self.level & R_ENCRYPTION:
            if len(body) % BLOCK:
                raise ValueError("encrypted response is not whole blocks")
            body = unpad(_cbc(self.keys.enc, self._iv(response=True), body, encrypt=False))
        return ResponseApdu(body, resp.sw)

    # ---- card side ----
    def unwrap(self, cmd: CommandApdu, *, first: bool = False) -> CommandApdu:
        """Verify C-MAC and decrypt; raises ``ApduError(6982)`` on any failure (the caller ends the session)."""
        if cmd.cla & 0x04 == 0 or len(cmd.data) < MAC_LENGTH:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "command not protected")
        body, mac = cmd.data[:-MAC_LENGTH], cmd.data[-MAC_LENGTH:]
        saved = self.chaining
        expected = self._command_mac(cmd.cla, cmd.ins, cmd.p1, cmd.p2, body)
        if not hmac.compare_digest(mac, expected):
            self.chaining = saved
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "C-MAC mismatch")
        if first:
            return CommandApdu(cmd.cla & ~0x04 & 0xFF, cmd.ins, cmd.p1, cmd.p2, body, cmd.ne)
        self.counter += 1
        if self.level & C_DECRYPTION and body:
            if len(body) % BLOCK:
                raise ApduError(SW.SM_DATA_OBJECTS_INCORRECT, "cryptogram is not whole blocks")
            try:
                body = unpad(_cbc(self.keys.enc, self._iv(response=False), body, encrypt=False))
            except ValueError as exc:
                raise ApduError(SW.SM_DATA_OBJECTS_INCORRECT, "bad padding") from exc
        return CommandApdu(cmd.cla & ~0x04 & 0xFF, cmd.ins, cmd.p1, cmd.p2, body, cmd.ne)

    def wrap_response(self, resp: ResponseApdu) -> ResponseApdu:
        """Protect a response: R-ENC on data, R-MAC on every answer — error status words included.

        Deliberate deviation from Amendment D (which sends error status words bare): our issuer commands are our own
        command set, and a bare error lets the relaying terminal claim a command failed after the card executed it
        (security finding S-4). An error answer carries no data, only the R-MAC over its status word."""
        if not self.level & R_MAC:
            return resp if _protected_sw(resp.sw) else ResponseApdu(b"", resp.sw)
        body = resp.data if _protected_sw(resp.sw) else b""
        if body and self.level & R_ENCRYPTION:
            body = _cbc(self.keys.enc, self._iv(response=True), pad(body), encrypt=True)
        sw = bytes(((resp.sw >> 8) & 0xFF, resp.sw & 0xFF))
        mac = aes_cmac(self.keys.rmac, self.chaining + body + sw)[:MAC_LENGTH]
        return ResponseApdu(body + mac, resp.sw)


def _protected_sw(sw: int) -> bool:
    """9000 and warnings (62xx, 63xx) may carry (encrypted) data; error status words carry only the R-MAC."""
    return sw == 0x9000 or (sw >> 8) in (0x62, 0x63)
