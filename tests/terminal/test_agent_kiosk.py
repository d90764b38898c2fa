"""A kiosk PIN reset driven through the agent's loopback API: sign password and 照合番号B typed on the "page" and
handed to the agent, the live capture (real photos, liveness actions) and the security code posted to the server
by the page, the new auth PIN chosen on the page and set over secure messaging — then checked on the card itself."""

from __future__ import annotations

import base64
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from agent_world import AgentWorld
from PIL import Image
from procedure_world import PINS, code_from_outbox

from jpki_remote.card import layout
from jpki_remote.card.client import CardClient, PinIncorrectError
from jpki_remote.procedures.ports import ProofingFace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proofing" / "liveness"))
import sequences

NEW_AUTH_PIN = "8642"


def _frames(photo: Path, actions: list[str]) -> list[str]:
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    frames = sequences.perform(sequences.portrait_frame(rgb), actions)
    return [base64.b64encode(sequences.to_jpeg(frame)).decode() for frame in frames]


def _card_photo(path: Path) -> bytes:
    from jpki_remote.proofing.face.card_photo import card_photo_from
    from jpki_remote.proofing.face.engine import FaceEngine

    rgb = np.asarray(Image.open(path).convert("RGB"))
    return card_photo_from(rgb, FaceEngine.shared().detect(rgb).boxes[0])


def test_kiosk_pin_reset_through_the_loopback_api(
    agent_world: AgentWorld, faces_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world = agent_world.world
    world.ports.face = ProofingFace(world.settings)
    world.photo = _card_photo(faces_dir / "obama" / "3.jpg")
    issued = world.issue_card()
    card_id = agent_world.put_in_directory(issued.card)
    agent = agent_world.agent("kiosk", "store-42")
    page = agent_world.page(agent)
    assert page.agent.post("/v1/card", json={"card_id": card_id}).status_code == 204

    view = page.ok("POST", "/procedures", {"kind": "pin_reset", "target": "auth_pin", "card_id": card_id})
    assert page.agent.post(f"/v1/procedures/{view['id']}/drive", json={}).status_code == 202
    done: set[str] = set()

    def proofs(view: dict) -> None:
        if view["waiting_for"] and view["waiting_for"].startswith("face") and view["face_ready"]:
            if "face" not in done:
                done.add("face")
                frames = _frames(faces_dir / "obama" / "1.jpg", view["face_challenge"]["steps"])
                reply = page.ok("POST", f"/procedures/{view['id']}/face", {"frames": frames})
                assert "face_liveness" in reply["proofs_done"], reply.get("face_result")
        elif view["waiting_for"] == "security_code" and "code" not in done:
            done.add("code")
            page.ok("POST", f"/procedures/{view['id']}/code/request", {})
            page.ok("POST", f"/procedures/{view['id']}/code/verify", {"code": code_from_outbox(world)})

    pins = {
        ("sign_password", False): PINS["sign_password"],
        ("code_b", False): issued.code_b,
        ("auth_pin", True): NEW_AUTH_PIN,
    }
    final = page.follow(view["id"], pins, on_view=proofs, timeout=180)
    assert final["status"] == "completed", final
    assert done == {"face", "code"}
    assert agent.service.wait(10) == "done" and not agent.service.pinpad.holding

    # the card itself: the new auth PIN works, the old one no longer does
    assert page.agent.delete("/v1/card").status_code == 204
    card = agent_world.cards.open(card_id)
    client = CardClient(card)
    client.select_ap("jpki")
    with pytest.raises(PinIncorrectError):
        client.verify(layout.JPKI_AUTH_PIN, PINS["auth_pin"])
    client.verify(layout.JPKI_AUTH_PIN, NEW_AUTH_PIN)
    assert world.audit.verify().ok
    for secret in (NEW_AUTH_PIN, PINS["sign_password"], issued.code_b):
        assert not re.search(rf"(?<![0-9A-Za-z]){secret}(?![0-9A-Za-z])", caplog.text), secret
        assert secret.encode().hex() not in caplog.text.lower()
