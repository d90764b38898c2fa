"""The procedure engine against a malicious terminal (it relays every APDU, so it can rewrite any answer that is not
cryptographically bound to the card): what is stopped (plain tests) and what is not (strict xfails, one per finding
of docs/security.md)."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from procedure_world import PINS, World, run_agent
from sqlalchemy import func, select

from jpki_remote.ca.models import Certificate
from jpki_remote.card import issuer_domain as isd
from jpki_remote.card.client import CardClient, parse_card_face
from jpki_remote.card.tlv import iterate, parse_header, parse_one, tlv
from jpki_remote.proofing.models import DevOutboxMessage
from jpki_remote.terminal.agent import ScriptedPinPad

SURFACE_AID = bytes.fromhex("D3921000310001010402")


class EvilTerminal:
    """Relays to the real card, except where ``answer(apdu)`` returns a forged answer (None: relay untouched)."""

    def __init__(self, card, answer: Callable[[bytes], bytes | None]) -> None:
        self.card = card
        self.answer = answer
        self.seen: list[bytes] = []

    @property
    def transmit(self) -> EvilTerminal:  # what run_agent() relays through
        return self

    def __call__(self, apdu: bytes) -> bytes:
        self.seen.append(bytes(apdu))
        forged = self.answer(bytes(apdu))
        return forged if forged is not None else self.card.transmit(apdu)


def _jp2(path: Path) -> bytes:
    from jpki_remote.proofing.face.card_photo import card_photo_from
    from jpki_remote.proofing.face.engine import FaceEngine

    rgb = np.asarray(Image.open(path).convert("RGB"))
    full = Image.open(io.BytesIO(card_photo_from(rgb, FaceEngine.shared().detect(rgb).boxes[0])))
    out = io.BytesIO()
    full.save(out, "JPEG2000", quality_mode="rates", quality_layers=[30])
    return out.getvalue()


def _forged_card_face(real: bytes, photo: bytes) -> bytes:
    """The card's EF 0002 with another photo; everything else (the card key, the issuer signature) unchanged."""
    outer = parse_one(real)
    _tag, _length, header = parse_header(real)
    parts = [o.raw if o.tag != 0xDF27 else tlv(0xDF27, photo) for o in iterate(real, header, header + len(outer.value))]
    return tlv(0xFF20, b"".join(parts))


@pytest.mark.slow
def test_forged_card_face_photo_is_refused(world: World, faces_dir: Path) -> None:
    """A stolen card + its auth PIN + an attacker's own face: the kiosk/app relays the card, but answers the READ
    BINARYs of the card face with a copy whose photo is the attacker's. Then the attacker's live face matches."""
    from jpki_remote.procedures.ports import ProofingFace

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proofing" / "liveness"))
    import sequences

    world.ports.face = ProofingFace(world.settings)
    world.photo = _jp2(faces_dir / "biden" / "2.jpg")  # the holder
    issued = world.issue_card()
    client = CardClient(issued.card)
    real = client.read_card_face(issued.code_b).raw
    issued.card.reset()
    forged = _forged_card_face(real, _jp2(faces_dir / "obama" / "3.jpg"))  # the attacker
    assert parse_card_face(forged).signature == parse_card_face(real).signature
    state = {"surface": False, "ef": None}

    def answer(apdu: bytes) -> bytes | None:
        if apdu[:4] == bytes.fromhex("00A4040C"):
            state["surface"] = apdu[5:] == SURFACE_AID
        elif apdu[:4] == bytes.fromhex("00A4020C"):
            state["ef"] = int.from_bytes(apdu[5:7], "big")
        elif apdu[:2] == b"\x00\xb0" and state["surface"] and state["ef"] == 0x0002:
            offset = int.from_bytes(apdu[2:4], "big")
            length = apdu[4] or 256
            return forged[offset : offset + length] + b"\x90\x00"
        return None

    engine = world.engine()
    reply = engine.start(kind="renewal", target="certificates", channel="kiosk", card_id=issued.card_id,
                         terminal_id="t-test")
    pinpad = ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"], "code_b": issued.code_b})
    from jpki_remote.terminal.agent import AgentCore, drive

    def call(body):
        return engine.exchange(reply["id"], "t-test", seq=body.get("seq"),
                               responses=[bytes.fromhex(r) for r in body.get("responses", [])], event=body.get("event"))

    reply = drive(call, AgentCore(EvilTerminal(issued.card, answer), pinpad), reply)
    if reply["face_ready"]:
        rgb = np.asarray(Image.open(faces_dir / "obama" / "1.jpg").convert("RGB"))
        steps = reply["face_challenge"]["steps"]
        frames = [sequences.to_jpeg(f) for f in sequences.perform(sequences.portrait_frame(rgb), steps)]
        reply = engine.submit_face(reply["id"], "t-test", frames)
    assert "face_liveness" not in reply["proofs_done"], "the attacker's face passed against the attacker's photo"


def _counter_pin_reset(world: World, card, transmit, new_pin: str) -> dict:
    engine = world.engine()
    reply = engine.start(kind="pin_reset", target="text_pin", channel="counter", card_id=card.card_id,
                         terminal_id="t-test")
    pinpad = ScriptedPinPad(new_pins={"text_pin": new_pin})
    reply = run_agent(engine, reply, card.card, pinpad)
    reply = engine.record_staff_check(reply["id"], "staff-7", ["passport"])
    from jpki_remote.terminal.agent import AgentCore, drive

    def call(body):
        return engine.exchange(reply["id"], "t-test", seq=body.get("seq"), new_pin=body.get("new_pin"),
                               responses=[bytes.fromhex(r) for r in body.get("responses", [])], event=body.get("event"))

    return drive(call, AgentCore(transmit, pinpad), reply)


def _outbox_count(world: World) -> int:
    with world.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(DevOutboxMessage)) or 0)


def test_pin_reset_hidden_by_a_forged_error_still_notifies_the_holder(world: World) -> None:
    issued = world.issue_card()

    def answer(apdu: bytes) -> bytes | None:
        if apdu[0] == 0x84 and apdu[1] == isd.INS_SET_PIN:
            issued.card.transmit(apdu)  # the card resets the PIN …
            return b"\x6a\x80"  # … the server is told "wrong data"
        return None

    before = _outbox_count(world)
    reply = _counter_pin_reset(world, issued, EvilTerminal(issued.card, answer), "7531")
    client = CardClient(issued.card)
    client.select_ap("text")
    client.verify(0x0011, "7531")  # the PIN was changed on the card
    assert reply["status"] == "completed" or _outbox_count(world) > before, (
        f"procedure {reply['status']} ({reply.get('error')}), and the holder was not told the PIN changed"
    )


def test_public_key_substituted_by_the_terminal_is_refused(world: World) -> None:
    """GENERATE KEY answers carry an R-MAC: a terminal swapping in its own public key (to get it certified in the
    holder's name) breaks the MAC, the procedure fails, and no certificate exists for the swapped key."""
    issued = world.issue_card()
    engine = world.engine()
    reply = engine.start(kind="renewal", target="certificates", channel="counter", card_id=issued.card_id,
                         terminal_id="t-test")
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}))
    reply = engine.record_staff_check(reply["id"], "staff-7", ["passport"])

    def answer(apdu: bytes) -> bytes | None:
        if apdu[0] == 0x84 and apdu[1] == isd.INS_GENERATE_KEY:
            real = issued.card.transmit(apdu)
            body = bytearray(real[:-2])
            body[20] ^= 0x01  # another modulus
            return bytes(body) + real[-2:]
        return None

    from jpki_remote.terminal.agent import AgentCore, drive

    def call(body):
        return engine.exchange(reply["id"], "t-test", seq=body.get("seq"),
                               responses=[bytes.fromhex(r) for r in body.get("responses", [])], event=body.get("event"))

    with world.db.session() as s:
        certificates_before = s.scalar(select(func.count()).select_from(Certificate))
    reply = drive(call, AgentCore(EvilTerminal(issued.card, answer), ScriptedPinPad()), reply)
    assert reply["status"] == "failed" and reply["error"]["code"] == "card_error", reply
    with world.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Certificate)) == certificates_before


def test_another_card_in_the_secure_session_is_refused(world: World) -> None:
    """Proofs with the holder's card, then the terminal puts another card under the issuer session (e.g. a card the
    attacker controls): the KDD it answers is not the registered one and the run stops before any command."""
    holder, other = world.issue_card(), world.issue_card()
    engine = world.engine()
    reply = engine.start(kind="pin_reset", target="text_pin", channel="counter", card_id=holder.card_id,
                         terminal_id="t-test")
    reply = run_agent(engine, reply, holder.card, ScriptedPinPad())
    reply = engine.record_staff_check(reply["id"], "staff-7", ["passport"])
    reply = run_agent(engine, reply, other.card, ScriptedPinPad(new_pins={"text_pin": "1357"}))
    assert reply["status"] == "failed" and reply["error"]["code"] == "card_mismatch", reply
    client = CardClient(other.card)
    client.select_ap("text")
    client.verify(0x0011, PINS["text_pin"])  # the other card's PIN is untouched


def test_remote_renewal_cannot_reuse_an_old_card_signature(world: World) -> None:
    """The card-possession challenge is fresh per procedure and bound to its id: a terminal replaying the card's
    signature from an earlier procedure is refused."""
    issued = world.issue_card()
    engine = world.engine()
    recorded: list[tuple[bytes, bytes]] = []

    def record(apdu: bytes) -> bytes | None:
        answer = issued.card.transmit(apdu)
        recorded.append((bytes(apdu), answer))
        return answer

    first = engine.start(kind="renewal", target="certificates", channel="counter", card_id=issued.card_id,
                         terminal_id="t-test")
    first = run_agent(engine, first, EvilTerminal(issued.card, record), ScriptedPinPad(pins=dict(PINS)))
    assert "card_auth_key" in first["proofs_done"], first
    engine.cancel(first["id"], "t-test")
    signatures = [a for c, a in recorded if c[:2] == b"\x80\x2a"]
    assert signatures
    second = engine.start(kind="renewal", target="certificates", channel="counter", card_id=issued.card_id,
                          terminal_id="t-test")

    def replay(apdu: bytes) -> bytes | None:
        return signatures[0] if apdu[:2] == b"\x80\x2a" else None

    second = run_agent(engine, second, EvilTerminal(issued.card, replay), ScriptedPinPad(pins=dict(PINS)))
    assert second["status"] == "failed" and "card_key" not in second["proofs_done"] and (
        "card_auth_key" not in second["proofs_done"]
    ), second
