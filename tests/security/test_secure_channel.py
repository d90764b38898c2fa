"""The issuer secure channel (SCP03 style) against a malicious terminal: the terminal sees and relays every APDU, so
it can replay, reorder, drop, tamper with or forge them. What the card and the host must do about each.

(The card package tests the basic replay/tamper cases; these add the relay attacks across commands and sessions.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from secworld import SecWeb

from jpki_remote.card import issuer_domain as isd
from jpki_remote.card import layout
from jpki_remote.card.client import CardClient, CardError
from jpki_remote.card.issuer import IssuerSession, SecureChannelError
from jpki_remote.card.virtual import VirtualCard

SW_SECURITY = b"\x69\x82"


class Relay:
    """A terminal between host and card: records every command, optionally rewrites what it relays."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.commands: list[bytes] = []
        self.rewrite: Callable[[bytes], bytes | None] | None = None  # None from rewrite: drop (fake an answer)
        self.fake_answer = b"\x6a\x80"

    def __call__(self, apdu: bytes) -> bytes:
        self.commands.append(bytes(apdu))
        if self.rewrite is not None:
            changed = self.rewrite(bytes(apdu))
            if changed is None:
                return self.fake_answer
            apdu = changed
        return self.card.transmit(apdu)


@pytest.fixture
def card(module_web: SecWeb) -> VirtualCard:
    issued = module_web.world.issue_card()
    issued.card.reset()
    return issued.card


@pytest.fixture
def master(module_web: SecWeb) -> bytes:
    return module_web.world.master


def _issuer_commands(relay: Relay) -> list[bytes]:
    return [c for c in relay.commands if c[0] == 0x84 and c[1] in isd.ISSUER_INS]


def test_command_replayed_into_a_later_session_is_refused(card: VirtualCard, master: bytes) -> None:
    relay = Relay(card)
    with IssuerSession(relay, master) as issuer:
        issuer.status()
    recorded = _issuer_commands(relay)[-1]
    with IssuerSession(relay, master) as issuer:
        assert card.transmit(recorded)[-2:] == SW_SECURITY  # other session keys, other chaining value
        with pytest.raises(SecureChannelError):
            issuer.status()  # and the session it was injected into is over


def test_dropped_command_breaks_the_chain(card: VirtualCard, master: bytes) -> None:
    """The terminal swallows one command (answers 9000 itself); the next one no longer verifies on the card."""
    relay = Relay(card)
    with IssuerSession(relay, master) as issuer:
        relay.rewrite = lambda apdu: None if apdu[1] == isd.INS_DISCARD else apdu
        relay.fake_answer = b"\x90\x00"  # no R-MAC: the host notices, the card never saw DISCARD
        with pytest.raises(SecureChannelError):
            issuer.discard()
    relay.rewrite = None
    with IssuerSession(relay, master) as issuer:
        relay.rewrite = lambda apdu: None if apdu[1] == isd.INS_DISCARD else apdu
        relay.fake_answer = b"\x69\x85"  # an error status word travels bare …
        with pytest.raises(CardError):
            issuer.discard()
        relay.rewrite = None
        with pytest.raises(SecureChannelError):  # … but the card's chaining value moved on without it
            issuer.status()


def test_reordered_commands_are_refused(card: VirtualCard, master: bytes) -> None:
    """The host wraps A then B; the terminal holds A back and sends B first: B's MAC fails, the session ends."""
    relay = Relay(card)
    with IssuerSession(relay, master) as issuer:
        channel = issuer._channel
        assert channel is not None
        from jpki_remote.card.apdu import CommandApdu

        first = channel.wrap(CommandApdu(0x80, isd.INS_GET_STATUS, 0, 0, b"", 256)).to_bytes()
        second = channel.wrap(CommandApdu(0x80, isd.INS_GET_STATUS, 0, 0, b"", 256)).to_bytes()
        assert card.transmit(second)[-2:] == SW_SECURITY
        assert card.transmit(first)[-2:] == SW_SECURITY  # the session is gone, also for the genuine one


def test_external_authenticate_cannot_be_replayed(card: VirtualCard, master: bytes) -> None:
    relay = Relay(card)
    with IssuerSession(relay, master):
        pass
    initialize, external = relay.commands[1], relay.commands[2]
    assert initialize[1] == isd.INS_INITIALIZE_UPDATE and external[1] == isd.INS_EXTERNAL_AUTHENTICATE
    # same host challenge again: the card answers with a fresh card challenge, so the old cryptogram is useless
    first = card.transmit(initialize)
    assert card.transmit(external)[-2:] != b"\x90\x00"
    second = card.transmit(initialize)
    assert first[13:21] != second[13:21]
    # and EXTERNAL AUTHENTICATE without a preceding INITIALIZE UPDATE is refused
    card.transmit(bytes.fromhex("00A4040C08") + layout.AID_ISSUER)
    assert card.transmit(external)[-2:] != b"\x90\x00"


def test_issuer_commands_need_the_secure_channel(card: VirtualCard) -> None:
    """Every issuer instruction, sent plain (CLA 80) or with a made-up MAC (CLA 84), without a session: 6982."""
    card.transmit(bytes.fromhex("00A4040C08") + layout.AID_ISSUER)
    for ins in sorted(isd.ISSUER_INS):
        for cla in (0x80, 0x84):
            answer = card.transmit(bytes([cla, ins, 0x01, 0x18, 0x08]) + b"\x00" * 8)
            assert answer[-2:] == SW_SECURITY, (hex(cla), hex(ins), answer.hex())


def test_unprotected_command_inside_a_session_ends_it(card: VirtualCard, master: bytes) -> None:
    with IssuerSession(card, master) as issuer:
        assert card.transmit(bytes([0x80, isd.INS_GET_STATUS, 0, 0, 0]))[-2:] == SW_SECURITY
        with pytest.raises(SecureChannelError):
            issuer.status()


def test_host_does_not_trust_an_unauthenticated_error_answer(card: VirtualCard, master: bytes) -> None:
    """The terminal relays SET PIN to the card (which resets the PIN) and tells the host "6A80 wrong data"."""
    relay = Relay(card)

    def swallow_answer(apdu: bytes) -> bytes | None:
        if apdu[1] == isd.INS_SET_PIN:
            card.transmit(apdu)  # the card executes it …
            return None  # … and the host is told it failed
        return apdu

    with IssuerSession(relay, master) as issuer:
        relay.rewrite = swallow_answer
        try:
            issuer.reset_holder_pin("text", "7777")
            told = "ok"
        except SecureChannelError:
            told = "unauthentic"
        except CardError:
            told = "failed"
    client = CardClient(card)
    client.select_ap("text")
    client.verify(layout.TEXT_PIN, "7777")  # the PIN did change
    assert told != "failed", "the host believed a forged failure of a command the card executed"
