"""Counter staff find a resident (``GET /registry/residents``) and lift a card's lockout (``POST
/registry/cards/{id}/unlock``): staff sign-in and a counter terminal both required, only this municipality's
residents, contacts masked, lockouts shown, the staff id taken from the session, everything audited."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from web_world import Web

from jpki_remote.proofing.limits import DEFAULT_RULES, AttemptKind, Scope
from jpki_remote.registry import service as registry

API = "/api/v1"
CARD_STARTS = next(r.limit for r in DEFAULT_RULES if r.kind is AttemptKind.START and r.scope is Scope.CARD)


@pytest.fixture
def counter(web: Web, tmp_path: Path) -> dict[str, str]:
    terminal = web.terminal("counter", tmp_path, "window-3")
    return {"Authorization": f"Bearer {terminal._token}", **web.staff_login("watanabe")}


def _lock(web: Web, card_id: str) -> None:
    for _ in range(CARD_STARTS + 1):
        web.world.ports.limits.check_and_count(AttemptKind.START, card_id=card_id)


def test_search_by_name_birth_date_or_card(web: Web, counter: dict[str, str]) -> None:
    first = web.world.issue_card(family_name="山田")
    web.world.issue_card(family_name="鈴木")
    with web.world.db.session() as s:
        registry.create_municipality(s, "27100", "大阪市", "大阪府")
        registry.add_resident(
            s,
            "271004",
            family_name="山田",
            given_name="太郎",
            address="大阪府大阪市北区1",
            birth_date=date(1980, 1, 1),
            sex=1,
        )
    by_name = web.client.get(f"{API}/registry/residents", params={"name": "山田"}, headers=counter)
    assert by_name.status_code == 200, by_name.text
    residents = by_name.json()["residents"]
    assert [r["id"] for r in residents] == [first.resident_id]  # not the 山田 of another municipality
    found = residents[0]
    assert found["name"] == "山田\u3000花子" and found["cards"][0]["id"] == first.card_id
    assert found["cards"][0]["state"] == "active" and found["cards"][0]["limits"]["locked"] is False
    assert found["contacts"] and all("***" in c["masked"] for c in found["contacts"])
    with web.world.db.session() as s:
        address = registry.contacts_of(s, first.resident_id)[0].address
    assert address not in by_name.text
    full = web.client.get(f"{API}/registry/residents", params={"name": "山田 花子"}, headers=counter).json()
    assert [r["id"] for r in full["residents"]] == [first.resident_id]
    by_card = web.client.get(f"{API}/registry/residents", params={"card_id": first.card_id}, headers=counter).json()
    assert [r["id"] for r in by_card["residents"]] == [first.resident_id]
    birth = found["birth_date"]
    by_birth = web.client.get(f"{API}/registry/residents", params={"birth_date": birth}, headers=counter).json()
    assert first.resident_id in [r["id"] for r in by_birth["residents"]]
    nobody = web.client.get(f"{API}/registry/residents", params={"name": "存在しない"}, headers=counter).json()
    assert nobody == {"residents": [], "truncated": False}
    searches = [e for e in web.world.audit.events(limit=500) if e.event_type == "registry.residents_searched"]
    assert len(searches) == 5 and searches[0].actor == "staff:watanabe"
    assert "山田" not in searches[0].detail_json and searches[0].detail["criteria"] == "name"


def test_search_needs_criteria_and_staff_at_a_counter(web: Web, counter: dict[str, str], tmp_path: Path) -> None:
    empty = web.client.get(f"{API}/registry/residents", headers=counter)
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "criteria_required"
    assert (
        web.client.get(f"{API}/registry/residents", params={"birth_date": "1990-13-01"}, headers=counter).status_code
        == 422
    )
    kiosk = web.terminal("kiosk", tmp_path, "k")
    as_kiosk = web.client.get(
        f"{API}/registry/residents", params={"name": "x"}, headers={"Authorization": f"Bearer {kiosk._token}"}
    )
    assert as_kiosk.status_code == 403
    web.client.post(f"{API}/logout", json={"role": "staff"})
    signed_out = web.client.get(f"{API}/registry/residents", params={"name": "x"}, headers=counter)
    assert signed_out.status_code == 401 and signed_out.json()["error"]["code"] == "staff_login_required"
    web.client.post(f"{API}/login/admin", json={"token": web.admin_token})
    assert web.client.get(f"{API}/registry/residents", params={"name": "x"}).status_code == 401


def test_staff_see_a_lockout_and_lift_it(web: Web, counter: dict[str, str], tmp_path: Path) -> None:
    issued = web.world.issue_card()
    _lock(web, issued.card_id)
    card = web.client.get(f"{API}/registry/residents", params={"card_id": issued.card_id}, headers=counter).json()
    limits = card["residents"][0]["cards"][0]
    assert limits["limits"]["locked"] and limits["sent_to_counter"]
    assert limits["limits"]["lockouts"][0]["reason"] == "card_procedure_starts"

    kiosk = web.terminal("kiosk", tmp_path, "k2")
    as_kiosk = web.client.post(
        f"{API}/registry/cards/{issued.card_id}/unlock",
        headers={"Authorization": f"Bearer {kiosk._token}", "X-CSRF-Token": counter["X-CSRF-Token"]},
        json={"documents": ["passport"]},
    )
    assert as_kiosk.status_code == 403
    no_csrf = {k: v for k, v in counter.items() if k != "X-CSRF-Token"}
    assert (
        web.client.post(
            f"{API}/registry/cards/{issued.card_id}/unlock", headers=no_csrf, json={"documents": ["passport"]}
        ).status_code
        == 403
    )
    lifted = web.client.post(
        f"{API}/registry/cards/{issued.card_id}/unlock",
        headers=counter,
        json={"staff_id": "somebody-typed", "documents": ["passport", "health_insurance_card"]},
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted"][0]["scope"] == "card"
    events = [e for e in web.world.audit.events(limit=500) if e.event_type == "limits.lockout_lifted"]
    assert [e.actor for e in events] == ["staff:watanabe"] and events[0].terminal_id
    assert "passport" in events[0].detail_json
    again = web.client.get(f"{API}/registry/residents", params={"card_id": issued.card_id}, headers=counter).json()
    assert again["residents"][0]["cards"][0]["limits"]["locked"] is False
    assert web.world.audit.verify().ok
