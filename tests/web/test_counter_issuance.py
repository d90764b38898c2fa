"""Counter issuance (``POST /counter/issuance``) refuses a photo that is valid base64 but not an image with its own
422 ``photo_unreadable`` — before the face service is asked and before anything is registered."""

from __future__ import annotations

import base64
import secrets
from datetime import date, timedelta
from pathlib import Path

import pytest
from web_world import Web

from jpki_remote.registry import service as registry

API = "/api/v1"


@pytest.fixture
def counter(web: Web, tmp_path: Path) -> dict[str, str]:
    terminal = web.terminal("counter", tmp_path, "window-1")
    return {"Authorization": f"Bearer {terminal._token}", **web.staff_login("sato")}


def _body(web: Web, photo: str) -> dict[str, object]:
    with web.world.db.session() as s:
        if s.get(registry.Municipality, "131016") is None:
            registry.create_municipality(s, "13101", "千代田区", "東京都")
        resident = registry.add_resident(s, "131016", family_name="交付", given_name="次郎",
                                         address="東京都千代田区1-1", birth_date=date(1990, 6, 1), sex=1)
        resident_id = resident.id
    return {
        "resident_id": resident_id,
        "card_id": "".join(secrets.choice("0123456789") for _ in range(15)),
        "diversification_data": secrets.token_hex(10),
        "card_expiry": (date.today() + timedelta(days=3650)).isoformat(),
        "documents": ["notice_of_issuance", "driver_licence"],
        "contacts": [],
        "photo": photo,
    }


@pytest.mark.parametrize("photo", ["QUJD", base64.b64encode(b"GIF89a" + bytes(10)).decode(),
                                   base64.b64encode(b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(40)).decode()])
def test_photo_that_is_not_an_image_is_422_photo_unreadable(web: Web, counter: dict[str, str], photo: str) -> None:
    body = _body(web, photo)
    response = web.client.post(f"{API}/counter/issuance", json=body, headers=counter)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "photo_unreadable" and error["message_ja"] and error["message_en"], error
    with web.world.db.session() as s:
        assert registry.get_card(s, str(body["card_id"])) is None  # refused before the card was registered


def test_a_real_photo_passes_the_image_check(web: Web, counter: dict[str, str], faces_dir: Path) -> None:
    """The same request with a real JPEG gets past the image check (here the world has no face service: 503)."""
    jpeg = base64.b64encode((faces_dir / "obama" / "3.jpg").read_bytes()).decode()
    response = web.client.post(f"{API}/counter/issuance", json=_body(web, jpeg), headers=counter)
    assert response.json()["error"]["code"] != "photo_unreadable", response.text
    assert response.status_code == 503, response.text
