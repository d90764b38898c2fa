"""Security finding S-4: the terminal relays every answer, so only an authenticated answer tells the issuer what the
card did. Error answers carry an R-MAC; a bare or altered one is "outcome unknown" (never a failure); the card's
authenticated reset counts and key slots let the server's scripts learn the truth in a new session."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from jpki_remote.card import issuer_domain as isd
from jpki_remote.card import layout, scp03
from jpki_remote.card.client import CardClient, CardError
from jpki_remote.card.factory import TestCertificateAuthority
from jpki_remote.card.issuer import CardMismatchError, IssuerSession, OutcomeUnknownError, SecureChannelError
from jpki_remote.card.store import CardStore
from jpki_remote.procedures import card_issuer
from jpki_remote.procedures.conversation import Transcript, record_responses, run_script

from .conftest import MASTER_KEY

Rewrite = Callable[[bytes, bytes], bytes]  # (command, card's answer) -> what the terminal tells the server


class Terminal:
    """Relays to the card; ``rewrite`` may change answers, ``drop`` decides which commands never reach the card."""

    def __init__(self, card: Any) -> None:
        self.card = card
        self.rewrite: Rewrite | None = None
        self.drop: Callable[[bytes], bool] = lambda apdu: False
        self.fake = b"\x6a\x80"

    def __call__(self, apdu: bytes) -> bytes:
        if self.drop(apdu):
            return self.fake
        answer = self.card.transmit(apdu)
        return self.rewrite(apdu, answer) if self.rewrite else answer


def _is(ins: int) -> Callable[[bytes], bool]:
    return lambda apdu: apdu[0] == 0x84 and apdu[1] == ins


def _drive(script: Any, params: dict[str, Any], terminal: Terminal, new_pin: str | None = None) -> dict[str, Any]:
    """Run a server script to its end the way the engine does: re-run over the transcript, relay what it asks."""
    transcript = Transcript(secrets.token_bytes(32))
    for _ in range(100):
        outcome = run_script(script, params, transcript, new_pin=new_pin)
        if outcome.finished:
            return outcome.result or {}
        assert outcome.needs_new_pin is None
        answers = [terminal(bytes.fromhex(r.wire["apdu"])) for r in outcome.requests]
        record_responses(transcript, [r.digest for r in outcome.requests], answers)
    raise AssertionError("script did not finish")


def _params(card: Any, **extra: Any) -> dict[str, Any]:
    return {"_master_key": MASTER_KEY, "key_version": 0, "kdd": card.state.kdd.hex(), **extra}


def _resets(card: Any, which: str) -> int:
    applet, fid = layout.HOLDER_PINS[which]
    with IssuerSession(card, MASTER_KEY) as issuer:
        pin = issuer.status().pin(applet, fid)
    assert pin is not None
    return pin.reset_count


def _pin_works(card: Any, which: str, value: str) -> bool:
    applet, fid = layout.HOLDER_PINS[which]
    client = CardClient(card)
    client.select_ap(applet)
    try:
        client.verify(fid, value)
    except CardError:
        return False
    return True


# ---- the channel --------------------------------------------------------------------------------------------------
def test_a_card_error_is_authenticated(made) -> None:
    card = made[0].card
    answers: list[bytes] = []

    def spy(apdu: bytes) -> bytes:
        answers.append(card.transmit(apdu))
        return answers[-1]

    with IssuerSession(spy, MASTER_KEY) as issuer:
        with pytest.raises(CardError) as refused:
            issuer.set_pin("jpki", layout.JPKI_AUTH_PIN, "86")  # the card refuses the format …
        assert not isinstance(refused.value, SecureChannelError) and refused.value.sw == 0x6A80
        assert len(answers[-1]) == scp03.MAC_LENGTH + 2  # … and its refusal carries an R-MAC
        assert issuer.status().pin("jpki", layout.JPKI_AUTH_PIN) is not None  # the session goes on


@pytest.mark.parametrize(
    "forge",
    [
        lambda answer: b"\x6a\x80",  # bare error status word
        lambda answer: b"\x69\x82",  # "the card closed the session"
        lambda answer: bytes([answer[0] ^ 1]) + answer[1:],  # the card's own answer, MAC altered
        lambda answer: answer[:-2] + b"\x6a\x80",  # the card's MAC on another status word
        lambda answer: b"\x90\x00",  # bare success
    ],
    ids=["bare-error", "bare-6982", "altered-mac", "mac-moved-to-error", "bare-success"],
)
def test_an_unauthenticated_answer_is_outcome_unknown(made, forge: Callable[[bytes], bytes]) -> None:
    card = made[0].card
    terminal = Terminal(card)
    terminal.rewrite = lambda apdu, answer: forge(answer) if _is(isd.INS_SET_PIN)(apdu) else answer
    with IssuerSession(terminal, MASTER_KEY) as issuer:
        with pytest.raises(OutcomeUnknownError):
            issuer.reset_holder_pin("text", "7777")
        assert not issuer.is_open
    assert _pin_works(card, "text", "7777")  # the card did execute it: that is why "unknown" is not "failed"


def test_reset_counts_are_reported_and_persisted(made) -> None:
    created, store = made
    card = created.card
    auth_before, sign_before = _resets(card, "auth"), _resets(card, "sign")  # personalisation set them once
    with IssuerSession(card, MASTER_KEY) as issuer:
        issuer.reset_holder_pin("auth", "8642")
        issuer.set_pin("jpki", layout.JPKI_AUTH_PIN, None)  # unblock only: counted too
        with pytest.raises(CardError):
            issuer.set_pin("jpki", layout.JPKI_AUTH_PIN, "1")  # refused: not counted
        status = issuer.status()
    assert status.pin("jpki", layout.JPKI_AUTH_PIN).reset_count == auth_before + 2  # type: ignore[union-attr]
    assert status.pin("jpki", layout.JPKI_SIGN_PIN).reset_count == sign_before  # type: ignore[union-attr]
    reopened = CardStore(store.directory).open(created.card_id)
    assert _resets(reopened, "auth") == auth_before + 2


def test_state_files_without_reset_counts_load_with_zero(made) -> None:
    created, store = made
    path = store.path(created.card_id)
    doc = json.loads(path.read_bytes())
    for pins in doc["pins"].values():
        for meta in pins.values():
            meta.pop("reset_count", None)
    path.write_text(json.dumps(doc))
    assert _resets(CardStore(store.directory).open(created.card_id), "sign") == 0


# ---- the server's set_pin script ----------------------------------------------------------------------------------
def test_set_pin_after_a_forged_error_reports_the_truth(made) -> None:
    card = made[0].card
    terminal = Terminal(card)
    terminal.rewrite = lambda apdu, answer: b"\x6a\x80" if _is(isd.INS_SET_PIN)(apdu) else answer
    before = _resets(card, "text")
    result = _drive(card_issuer.set_pin, _params(card, pin_kind="text_pin"), terminal, new_pin="7531")
    assert result == {"new_pin_valid": True}
    assert _resets(card, "text") == before + 1  # executed exactly once
    assert _pin_works(card, "text", "7531")


def test_set_pin_that_never_reached_the_card_is_sent_again(made) -> None:
    card = made[0].card
    terminal = Terminal(card)
    dropped: list[bytes] = []

    def drop_first(apdu: bytes) -> bool:
        if _is(isd.INS_SET_PIN)(apdu) and not dropped:
            dropped.append(apdu)
            return True
        return False

    terminal.drop = drop_first
    before = _resets(card, "auth")
    assert _drive(card_issuer.set_pin, _params(card, pin_kind="auth_pin"), terminal, new_pin="2468")["new_pin_valid"]
    assert dropped and _resets(card, "auth") == before + 1
    assert _pin_works(card, "auth", "2468")


def test_residence_pin_both_references_set_despite_a_forgery(made) -> None:
    card = made[0].card
    terminal = Terminal(card)
    forged: list[bytes] = []

    def forge_first(apdu: bytes, answer: bytes) -> bytes:
        if _is(isd.INS_SET_PIN)(apdu) and not forged:
            forged.append(apdu)
            return b"\x69\x85"
        return answer

    terminal.rewrite = forge_first
    _drive(card_issuer.set_pin, _params(card, pin_kind="residence_pin"), terminal, new_pin="1122")
    assert forged and _pin_works(card, "juki", "1122") and _pin_works(card, "common", "1122")


def test_set_pin_never_reports_an_unauthenticated_failure(made) -> None:
    """A terminal that breaks every answer from SET PIN on: the script cannot learn the truth, and says so
    (OutcomeUnknownError) instead of reporting a failure."""
    card = made[0].card
    terminal = Terminal(card)
    broken: list[bool] = []

    def break_from_set_pin(apdu: bytes, answer: bytes) -> bytes:
        if _is(isd.INS_SET_PIN)(apdu):
            broken.append(True)
        return b"\x6a\x80" if broken else answer

    terminal.rewrite = break_from_set_pin
    with pytest.raises(OutcomeUnknownError):
        _drive(card_issuer.set_pin, _params(card, pin_kind="text_pin"), terminal, new_pin="9753")
    assert _pin_works(card, "text", "9753")


# ---- the commit script --------------------------------------------------------------------------------------------
def _pending_renewal(made, pooled_keygen) -> Any:
    created = made[0]
    ca = TestCertificateAuthority(pooled_keygen)
    with IssuerSession(created.card, MASTER_KEY) as issuer:
        auth = issuer.generate_key("jpki", layout.JPKI_AUTH_KEY)
        sign = issuer.generate_key("jpki", layout.JPKI_SIGN_KEY)
        issued = ca.issue(auth, sign, created.holder)
        issuer.put_certificate(layout.JPKI_AUTH_KEY, issued.auth)
        issuer.put_certificate(layout.JPKI_SIGN_KEY, issued.sign)  # type: ignore[arg-type]
    return issued


@pytest.mark.parametrize("attack", ["forged-error", "dropped"])
def test_commit_after_an_unauthenticated_answer_reports_the_truth(made, pooled_keygen, attack: str) -> None:
    card = made[0].card
    issued = _pending_renewal(made, pooled_keygen)
    terminal = Terminal(card)
    if attack == "forged-error":
        terminal.rewrite = lambda apdu, answer: b"\x6a\x80" if _is(isd.INS_COMMIT)(apdu) else answer
    else:
        seen: list[bytes] = []
        terminal.drop = lambda apdu: _is(isd.INS_COMMIT)(apdu) and not seen and not seen.append(apdu)
    assert _drive(card_issuer.commit, _params(card), terminal) == {}
    assert CardClient(card).read_auth_certificate() == issued.auth
    with IssuerSession(card, MASTER_KEY) as issuer:
        assert issuer.status().pending_keys == ()


# ---- issuer key material ------------------------------------------------------------------------------------------
class _Source:
    def __init__(self) -> None:
        self.asked: list[tuple[int, bytes]] = []

    def card_keys(self, key_version: int, kdd: bytes) -> scp03.CardStaticKeys:
        self.asked.append((key_version, kdd))
        return scp03.CardStaticKeys.from_dict(scp03.diversify(MASTER_KEY, kdd), kdd, key_version)


def test_session_with_static_keys_or_a_key_source(made) -> None:
    card = made[0].card
    kdd = card.state.kdd
    static = scp03.CardStaticKeys.from_dict(scp03.diversify(MASTER_KEY, kdd), kdd)
    with IssuerSession(card, static) as issuer:
        assert issuer.status().serial == card.state.serial
    source = _Source()
    with IssuerSession(card, source, key_version=0) as issuer:
        issuer.reset_holder_pin("text", "4321")
    assert source.asked == [(0, kdd)]
    assert _pin_works(card, "text", "4321")
    assert "kdd=" in repr(static) and static.enc.hex() not in repr(static)


def test_static_keys_of_another_card_are_refused(made) -> None:
    card = made[0].card
    other_kdd = bytes(10)
    static = scp03.CardStaticKeys.from_dict(scp03.diversify(MASTER_KEY, other_kdd), other_kdd)
    with pytest.raises(CardMismatchError):
        IssuerSession(card, static).open()
    with pytest.raises(TypeError):
        IssuerSession(card, "not keys")  # type: ignore[arg-type]
