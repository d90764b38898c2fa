"""The live statistics read what the procedures record: the analytics live endpoint counts a finished remote procedure
with its failed code entries (``data["code_attempts"]``), and ``jpki-remote plan --database`` forecasts from the card
a finished issuance at the counter put into service."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import date, timedelta

from procedure_world import PINS, code_from_outbox, run_agent
from web_world import Web

from jpki_remote.card import factory, layout
from jpki_remote.card.factory import CardPins, create_card
from jpki_remote.card.issuer import IssuerSession
from jpki_remote.registry import service as registry
from jpki_remote.terminal.agent import ScriptedPinPad

LIVE = "/api/analytics/live"


def _live(web: Web) -> dict:
    response = web.client.get(LIVE, headers={"Authorization": f"Bearer {web.admin_token}"})
    assert response.status_code == 200, response.text
    return response.json()


def _plan(web: Web) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPKI_")}
    env["JPKI_DATA_DIR"] = str(web.world.settings.data_dir)
    command = [sys.executable, "-m", "jpki_remote", "plan", "--database", str(web.world.db.engine.url), "--json"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_live_endpoint_counts_a_finished_online_procedure_and_its_failed_code(web: Web) -> None:
    assert _live(web)["total"] == 0
    issued = web.world.issue_card()
    engine = web.world.engine()
    reply = engine.start(kind="revocation", target="signature", channel="online", card_id=issued.card_id,
                         terminal_id="t-o")  # fmt: skip
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}), "t-o")
    engine.request_code(reply["id"], "t-o")
    code = code_from_outbox(web.world)
    engine.verify_code(reply["id"], "t-o", "000000" if code != "000000" else "111111")
    reply = engine.verify_code(reply["id"], "t-o", code)
    reply = run_agent(engine, reply, issued.card, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}), "t-o")
    assert reply["status"] == "completed", reply["error"]
    live = _live(web)
    assert live["total"] == 1 and live["by_channel"]["online"] == 1
    assert live["by_outcome"] == {"completed": 1} and live["by_kind"] == {"revocation": 1}
    assert live["remote"] == 1 and live["counter_visits_avoided"] == 1
    assert live["code_failures_per_procedure"] == 1.0 and live["code_failure_rate"] == 1.0
    assert live["face_failures_per_procedure"] == 0.0


def test_plan_from_the_database_follows_a_finished_issuance(web: Web) -> None:
    before = _plan(web)
    assert before.returncode == 2 and "no cards in use" in before.stderr
    with web.world.db.session() as s:
        registry.create_municipality(s, "13101", "千代田区", "東京都")
        resident = registry.add_resident(s, "131016", family_name="交付", given_name="三郎", address="千代田区1-3",
                                         birth_date=date(1985, 3, 4), sex=1)  # fmt: skip
        resident_id = resident.id
    expiry = date.today() + timedelta(days=3650)
    card_id = "".join(secrets.choice("0123456789") for _ in range(15))
    made = create_card(factory.test_holder(web.world.photo, birth_date=date(1985, 3, 4), sex="1", card_expiry=expiry),
                       issuer_master_key=web.world.master, card_id=card_id,
                       pins=CardPins(auth="0000", sign="CENTRE0", text="0000", juki="0000"))  # fmt: skip
    with IssuerSession(made.card, web.world.master) as issuer:
        issuer.read_public_key("surface", layout.SURFACE_AP_KEY)
    made.card.reset()
    engine = web.world.engine()
    reply = engine.start_issuance(resident_id=resident_id, card_id=card_id, diversification_data=made.card.state.kdd,
                                  card_public_key_der=None, card_expiry=expiry, terminal_id="t-c", staff_id="s-9",
                                  documents=["notice_of_issuance"])  # fmt: skip
    pinpad = ScriptedPinPad(
        pins={"code_b": made.verification_code_b, "auth_pin": PINS["auth_pin"]}, new_pins=dict(PINS)
    )
    reply = run_agent(engine, reply, made.card, pinpad, "t-c")
    assert reply["status"] == "completed", reply["error"]
    after = _plan(web)
    assert after.returncode == 0, after.stderr
    figures = json.loads(after.stdout)["figures"]
    renewals = sum(v for k, v in figures.items() if k.startswith("certificate_renewals_fy"))
    assert renewals > 0.5  # the forecast now has this card's certificates falling due
    live = _live(web)
    assert live["by_kind"] == {"issuance": 1} and live["by_channel"]["counter"] == 1
