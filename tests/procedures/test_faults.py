"""Interruptions: the engine object dropped between every call, lost replies, the card pulled between key
generation and commit, a COMMIT whose answer never arrived, stale procedures recovered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from procedure_world import PINS, World, run_agent
from sqlalchemy import select

from jpki_remote.ca.models import Certificate, CertificateState
from jpki_remote.card.client import CardClient
from jpki_remote.card.issuer import IssuerSession
from jpki_remote.procedures.models import Procedure, ProcedureStep
from jpki_remote.terminal.agent import AgentCore, ScriptedPinPad


def _exchange(world: World, reply: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return world.engine().exchange(  # a new engine object every time: nothing survives in memory
        reply["id"],
        "t-test",
        seq=body.get("seq"),
        responses=[bytes.fromhex(r) for r in body.get("responses", [])],
        new_pin=body.get("new_pin"),
        event=body.get("event"),
    )


def _step(world: World, reply: dict[str, Any], core: AgentCore, *, duplicate: bool = False) -> dict[str, Any]:
    exchange = reply["exchange"]
    responses = [r.hex() for r in core.perform(exchange["requests"])]
    body = {"seq": exchange["seq"], "responses": responses}
    first = _exchange(world, reply, body)
    if duplicate:  # the reply was lost: the agent sends the same request again
        second = _exchange(world, reply, body)
        assert second["exchange"]["requests"] == first["exchange"]["requests"]
        return second
    return first


def _until(
    world: World, reply: dict[str, Any], core: AgentCore, stop: Callable[[dict[str, Any]], bool], **kw: bool
) -> dict[str, Any]:
    for _ in range(200):
        if stop(reply) or reply["exchange"]["status"] != "card":
            return reply
        reply = _step(world, reply, core, **kw)
    raise AssertionError("no progress")


def _start_counter_renewal(world: World, issued: Any) -> dict[str, Any]:
    engine = world.engine()
    reply = engine.start(
        kind="renewal", target="certificates", channel="counter", card_id=issued.card_id, terminal_id="t-test"
    )
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins=dict(PINS)))
    return world.engine().record_staff_check(reply["id"], "staff-1", ["passport"])


def _certificates_of(world: World, card_id: str) -> list[Certificate]:
    with world.db.session() as s:
        return list(s.scalars(select(Certificate).where(Certificate.holder_ref == card_id)))


def _old_auth_key_still_signs(issued: Any, world: World) -> None:
    client = CardClient(issued.card)
    der = client.read_auth_certificate()
    certificate = x509.load_der_x509_certificate(der)
    assert certificate.serial_number == issued.auth_serial
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + bytes(32)
    signature = client.sign_with_auth_key(PINS["auth_pin"], digest_info)
    issued.card.reset()
    public_key = certificate.public_key()
    public_key.verify(signature, bytes(32), padding.PKCS1v15(), Prehashed(hashes.SHA256()))  # type: ignore[union-attr,call-arg]
    assert world.ca.status("authentication", issued.auth_serial).state is CertificateState.ISSUED


def test_every_call_on_a_new_engine_with_lost_replies(world: World) -> None:
    issued = world.issue_card()
    reply = _start_counter_renewal(world, issued)
    core = AgentCore(issued.card.transmit, ScriptedPinPad(pins=dict(PINS)))
    reply = _until(world, reply, core, lambda r: False, duplicate=True)
    assert reply["status"] == "completed", reply
    certificates = _certificates_of(world, issued.card_id)
    assert len(certificates) == 4  # two at issuance, two at renewal: no request issued twice
    assert sorted(c.state.value for c in certificates) == ["issued", "issued", "revoked", "revoked"]


def test_card_pulled_between_key_generation_and_commit(world: World) -> None:
    issued = world.issue_card()
    reply = _start_counter_renewal(world, issued)
    core = AgentCore(issued.card.transmit, ScriptedPinPad(pins=dict(PINS)))
    reply = _until(world, reply, core, lambda r: r["state"] == "commit")
    assert reply["state"] == "commit" and reply["exchange"]["status"] == "card"
    with world.db.session() as s:
        request_id = s.get(Procedure, reply["id"]).data["request_id"]
    # the holder pulls the card before the COMMIT is sent: the old certificates must keep working
    reply = _exchange(world, reply, {"seq": reply["exchange"]["seq"], "responses": [], "event": "card_removed"})
    assert reply["exchange"]["status"] == "insert_card"
    issued.card.reset()
    _old_auth_key_still_signs(issued, world)
    with IssuerSession(issued.card, world.master) as issuer:
        assert issuer.status().pending_keys  # the new keys wait in the pending slots
    issued.card.reset()
    outcomes = world.engine().recover(now=datetime.now(UTC) + timedelta(hours=1))
    assert outcomes == [(reply["id"], "rolled_back")]
    new = [c for c in _certificates_of(world, issued.card_id) if c.request_id == request_id]
    assert len(new) == 2 and all(c.state is CertificateState.REVOKED for c in new)
    assert {c.revocation_reason for c in new} == {5}  # cessationOfOperation
    _old_auth_key_still_signs(issued, world)
    # the next renewal discards the leftovers and completes
    reply = _start_counter_renewal(world, issued)
    reply = run_agent(world.engine(), reply, issued.card, ScriptedPinPad(pins=dict(PINS)))
    assert reply["status"] == "completed"
    with IssuerSession(issued.card, world.master) as issuer:
        assert not issuer.status().pending_keys
    issued.card.reset()


def test_commit_answer_lost_then_the_card_tells_the_truth(world: World) -> None:
    issued = world.issue_card()
    reply = _start_counter_renewal(world, issued)
    core = AgentCore(issued.card.transmit, ScriptedPinPad(pins=dict(PINS)))
    reply = _until(world, reply, core, lambda r: r["state"] == "commit")
    # relay the commit conversation to the card, but lose the card's last answer (the COMMIT) on the way back
    for _ in range(10):
        responses = core.perform(reply["exchange"]["requests"])
        with world.db.session() as s:
            steps = len(s.get(Procedure, reply["id"]).conversation["transcript"]["entries"])
        if steps == 3:  # SELECT ISD, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE answered: this batch is COMMIT
            break
        reply = _exchange(world, reply, {"seq": reply["exchange"]["seq"], "responses": [r.hex() for r in responses]})
    del responses
    reply = _exchange(world, reply, {"seq": reply["exchange"]["seq"], "responses": [], "event": "card_removed"})
    assert reply["state"] == "confirm"
    # the server restarts; the stale procedure cannot be rolled back (the card may have committed)
    assert world.engine().recover(now=datetime.now(UTC) + timedelta(hours=1)) == [(reply["id"], "awaiting_card")]
    issued.card.reset()
    # the holder comes back to any terminal: starting a procedure resumes the unresolved one
    engine = world.engine()
    resumed = engine.start(
        kind="renewal", target="certificates", channel="counter", card_id=issued.card_id, terminal_id="t-test"
    )
    assert resumed["resumed"] and resumed["id"] == reply["id"] and resumed["state"] == "confirm"
    done = run_agent(engine, resumed, issued.card, ScriptedPinPad(pins=dict(PINS)))
    assert done["status"] == "completed", done
    assert world.ca.status("authentication", issued.auth_serial).reason_name == "superseded"
    with world.db.session() as s:
        journal = [
            (st.name, st.phase.value)
            for st in s.scalars(
                select(ProcedureStep).where(ProcedureStep.procedure_id == reply["id"]).order_by(ProcedureStep.seq)
            )
        ]
    assert ("commit", "intent") in journal and ("recover", "info") in journal


def test_expired_before_any_card_update_just_ends(world: World) -> None:
    issued = world.issue_card()
    reply = world.engine().start(
        kind="renewal", target="certificates", channel="counter", card_id=issued.card_id, terminal_id="t-test"
    )
    assert world.engine().recover(now=datetime.now(UTC) + timedelta(hours=1)) == [(reply["id"], "failed")]
    again = world.engine().start(
        kind="renewal", target="certificates", channel="counter", card_id=issued.card_id, terminal_id="t-test"
    )
    assert again["id"] != reply["id"] and again["status"] == "active"
