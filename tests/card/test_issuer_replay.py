"""Injectable randomness of the issuer session: with the same random source and the same card answers the host sends
byte-identical commands (what a script re-run over a stored transcript relies on); by default the host challenge is
fresh every time; ``expected_kdd`` refuses another card before authenticating."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from jpki_remote.card import issuer_domain as isd
from jpki_remote.card import layout
from jpki_remote.card.client import CardClient
from jpki_remote.card.issuer import CardMismatchError, IssuerSession

from .conftest import MASTER_KEY


def seeded(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic random source (counter-mode SHA-256 over ``seed``)."""
    counter = 0

    def random(n: int) -> bytes:
        nonlocal counter
        counter += 1
        out = b""
        while len(out) < n:
            out += hashlib.sha256(seed + counter.to_bytes(4, "big") + len(out).to_bytes(4, "big")).digest()
        return out[:n]

    return random


def session_script(issuer: IssuerSession) -> None:
    issuer.set_pin("jpki", layout.JPKI_AUTH_PIN, "8642")  # carries an encrypted value
    issuer.status()
    issuer.discard()


def record(card, random: Callable[[int], bytes] | None = None) -> list[tuple[bytes, bytes]]:
    log: list[tuple[bytes, bytes]] = []

    def transmit(apdu: bytes) -> bytes:
        response = card.transmit(apdu)
        log.append((apdu, response))
        return response

    kwargs = {} if random is None else {"random": random}
    with IssuerSession(transmit, MASTER_KEY, **kwargs) as issuer:
        session_script(issuer)
    return log


def test_same_random_source_gives_byte_identical_commands_on_replay(made) -> None:
    created, _ = made
    recorded = record(created.card, seeded(b"conversation seed"))
    responses = iter(resp for _cmd, resp in recorded)
    replayed: list[bytes] = []

    def replay(apdu: bytes) -> bytes:  # no card: the answers come from the recording
        replayed.append(apdu)
        return next(responses)

    with IssuerSession(replay, MASTER_KEY, random=seeded(b"conversation seed")) as issuer:
        session_script(issuer)
    assert replayed == [cmd for cmd, _resp in recorded]
    assert any(cmd[:2] == bytes((0x84, isd.INS_SET_PIN)) for cmd in replayed)
    # and it really talked to the card: the PIN was set
    client = CardClient(created.card)
    client.select_ap("jpki")
    client.verify(layout.JPKI_AUTH_PIN, "8642")


def initialize_update(log: list[tuple[bytes, bytes]]) -> bytes:
    return next(cmd for cmd, _ in log if cmd[:2] == bytes((0x80, isd.INS_INITIALIZE_UPDATE)))


def test_host_challenge_comes_from_the_random_source(made) -> None:
    card = made[0].card
    one = initialize_update(record(card, seeded(b"one")))
    again = initialize_update(record(card, seeded(b"one")))
    other = initialize_update(record(card, seeded(b"two")))
    assert one == again and one != other
    assert one[5:13] == seeded(b"one")(8)


def test_default_host_challenge_is_fresh_each_session(made) -> None:
    card = made[0].card
    challenges = {initialize_update(record(card))[5:13] for _ in range(3)}
    assert len(challenges) == 3


def test_random_source_of_wrong_length_is_refused(made) -> None:
    with pytest.raises(ValueError, match="random source"):
        IssuerSession(made[0].card, MASTER_KEY, random=lambda n: b"\x00" * (n - 1)).open()


def test_expected_kdd_refuses_another_card_before_authenticating(made) -> None:
    card = made[0].card
    sent: list[bytes] = []

    def spy(apdu: bytes) -> bytes:
        sent.append(apdu)
        return card.transmit(apdu)

    with pytest.raises(CardMismatchError):
        IssuerSession(spy, MASTER_KEY, expected_kdd=bytes(10)).open()
    assert not any(apdu[1] == isd.INS_EXTERNAL_AUTHENTICATE for apdu in sent)
    with IssuerSession(card, MASTER_KEY, expected_kdd=card.state.kdd) as issuer:
        assert issuer.kdd == card.state.kdd
