"""Sign-in of counter staff and of the admin: cookie sessions (HttpOnly, SameSite=Strict, Secure over https), CSRF
on state changes, idle expiry, lockout after wrong passwords, the staff id taken from the session, the analytics and
admin API reachable with the admin cookie, bearer tokens still working, the script-free login form."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_world import Web

from jpki_remote.terminal.models import StaffAccount
from jpki_remote.terminal.staff import add_staff, verify_password
from jpki_remote.web.app import create_app
from jpki_remote.web.login_models import LoginSession

API = "/api/v1"
PASSWORD = "correct horse battery"


def _cookie_attributes(response, name: str) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0].lower()


def _add(web: Web, staff_id: str, municipality: str | None = "131016") -> None:
    with web.world.db.session() as s:
        add_staff(s, staff_id, PASSWORD, municipality_code=municipality)


def test_password_is_stored_as_scrypt_only(web: Web) -> None:
    _add(web, "suzuki")
    with web.world.db.session() as s:
        stored = s.get(StaffAccount, "suzuki").password_hash
    assert stored.startswith("scrypt$15$8$1$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored) and not verify_password(PASSWORD + "x", stored)


def test_staff_sign_in_cookies_and_failures(web: Web) -> None:
    _add(web, "tanaka")
    wrong = web.client.post(f"{API}/login/staff", json={"staff_id": "tanaka", "password": "wrong password"})
    unknown = web.client.post(f"{API}/login/staff", json={"staff_id": "nobody", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401 and wrong.json() == unknown.json()
    assert PASSWORD not in unknown.text
    ok = web.client.post(f"{API}/login/staff", json={"staff_id": "tanaka", "password": PASSWORD})
    assert ok.status_code == 200 and ok.json()["staff_id"] == "tanaka"
    session_cookie = _cookie_attributes(ok, "jpki_staff")
    assert "httponly" in session_cookie and "samesite=strict" in session_cookie and "path=/" in session_cookie
    assert "secure" not in session_cookie  # plain http here; see the https test
    csrf_cookie = _cookie_attributes(ok, "jpki_staff_csrf")
    assert "httponly" not in csrf_cookie and ok.json()["csrf_token"] in csrf_cookie
    me = web.client.get(f"{API}/login/session").json()
    assert me["staff"]["staff_id"] == "tanaka" and me["admin"] is None
    with web.world.db.session() as s:  # only a hash of the token is stored
        tokens = [row.token_hash for row in s.query(LoginSession).all()]
    assert web.client.cookies["jpki_staff"] not in tokens and all(len(t) == 64 for t in tokens)


def test_wrong_passwords_lock_the_account(web: Web) -> None:
    _add(web, "sato")
    for _ in range(web.world.settings.login_max_failures):
        assert web.client.post(f"{API}/login/staff", json={"staff_id": "sato", "password": "x" * 12}).status_code == 401
    locked = web.client.post(f"{API}/login/staff", json={"staff_id": "sato", "password": PASSWORD})
    assert locked.status_code == 401
    with web.world.db.session() as s:
        s.get(StaffAccount, "sato").locked_until = datetime.now(UTC) - timedelta(seconds=1)
    assert web.client.post(f"{API}/login/staff", json={"staff_id": "sato", "password": PASSWORD}).status_code == 200


def test_counter_operations_need_the_staff_session_and_csrf(web: Web, tmp_path: Path) -> None:
    issued = web.world.issue_card()
    counter = web.terminal("counter", tmp_path)
    bearer = {"Authorization": f"Bearer {counter._token}"}
    body = {"kind": "revocation", "target": "signature", "card_id": issued.card_id}
    no_staff = web.client.post(f"{API}/counter/procedures", headers=bearer, json=body)
    assert no_staff.status_code == 401 and no_staff.json()["error"]["code"] == "staff_login_required"
    assert no_staff.json()["error"]["message_en"] == "A member of staff must sign in."
    csrf = web.staff_login("yamada")
    no_csrf = web.client.post(f"{API}/counter/procedures", headers=bearer, json=body)
    assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf_failed"
    bad_csrf = web.client.post(f"{API}/counter/procedures", headers={**bearer, "X-CSRF-Token": "0" * 64}, json=body)
    assert bad_csrf.status_code == 403
    # a typed staff id is ignored: the signed-in member of staff is who the procedure records
    started = web.client.post(
        f"{API}/counter/procedures", headers={**bearer, **csrf}, json={**body, "staff_id": "someone-else"}
    )
    assert started.status_code == 201, started.text
    checked = web.client.post(
        f"{API}/counter/procedures/{started.json()['id']}/staff-check",
        headers={**bearer, **csrf},
        json={"documents": ["passport"]},
    )
    assert checked.status_code == 200, checked.text
    actors = {e.actor for e in web.world.audit.events(procedure_id=started.json()["id"], limit=100)}
    assert "staff:yamada" in actors and not any("someone-else" in a for a in actors)
    # the cookie alone is not a counter: without the counter terminal's session nothing happens
    assert web.client.post(f"{API}/counter/procedures", headers=csrf, json=body).status_code == 401


def test_staff_of_another_municipality_is_refused_at_this_counter(web: Web, tmp_path: Path) -> None:
    counter = web.terminal("counter", tmp_path)
    _add(web, "osaka.staff", municipality="271004")
    web.client.post(f"{API}/login/staff", json={"staff_id": "osaka.staff", "password": PASSWORD})
    csrf = {"X-CSRF-Token": web.client.cookies["jpki_staff_csrf"]}
    answer = web.client.post(
        f"{API}/counter/procedures",
        headers={"Authorization": f"Bearer {counter._token}", **csrf},
        json={"kind": "revocation", "target": "signature", "card_id": "123456789012345"},
    )
    assert answer.status_code == 403


def test_idle_sessions_end_and_logout_revokes(web: Web, tmp_path: Path) -> None:
    counter = web.terminal("counter", tmp_path)
    bearer = {"Authorization": f"Bearer {counter._token}"}
    web.staff_login("kato")
    assert web.client.get(f"{API}/login/session").json()["staff"]["staff_id"] == "kato"
    with web.world.db.session() as s:
        for row in s.query(LoginSession).all():
            row.last_used_at = datetime.now(UTC) - timedelta(minutes=web.world.settings.login_idle_minutes + 1)
    assert web.client.get(f"{API}/login/session").json()["staff"] is None
    csrf = web.staff_login("kato")
    token = web.client.cookies["jpki_staff"]
    assert web.client.post(f"{API}/logout", json={"role": "staff"}).status_code == 204
    web.client.cookies.set("jpki_staff", token)  # a stolen copy of the cookie is dead too
    answer = web.client.post(
        f"{API}/counter/procedures",
        headers={**bearer, **csrf},
        json={"kind": "revocation", "target": "signature", "card_id": "123456789012345"},
    )
    assert answer.status_code == 401


def test_disabled_staff_lose_their_session(web: Web) -> None:
    web.staff_login("ito")
    with web.world.db.session() as s:
        s.get(StaffAccount, "ito").active = False
    assert web.client.get(f"{API}/login/session").json()["staff"] is None


def test_admin_cookie_session_for_admin_api_and_analytics(web: Web) -> None:
    assert web.client.get(f"{API}/admin/audit").status_code == 401
    assert web.client.post(f"{API}/login/admin", json={"token": "wrong" * 8}).status_code == 401
    ok = web.client.post(f"{API}/login/admin", json={"token": web.admin_token})
    assert ok.status_code == 200 and "httponly" in _cookie_attributes(ok, "jpki_admin")
    assert web.client.get(f"{API}/admin/audit").status_code == 200
    assert web.client.get(f"{API}/admin/policy").status_code == 200
    analytics = web.client.get("/api/analytics/dashboard.js")
    assert analytics.status_code == 200, "the analytics router accepts the admin cookie"
    assert web.client.post(f"{API}/admin/recover").status_code == 403  # state change without the CSRF token
    csrf = {"X-CSRF-Token": ok.json()["csrf_token"]}
    assert web.client.post(f"{API}/admin/recover", headers=csrf).status_code == 200
    # bearer tokens keep working for API clients, a wrong bearer is not rescued by the cookie
    fresh = TestClient(web.client.app)
    assert fresh.get(f"{API}/admin/audit", headers={"Authorization": f"Bearer {web.admin_token}"}).status_code == 200
    assert fresh.get("/api/analytics/dashboard.js").status_code == 401
    assert web.client.get(f"{API}/admin/audit", headers={"Authorization": "Bearer wrong"}).status_code == 401
    # a staff session is not an admin session
    web.client.post(f"{API}/logout", json={"role": "admin"})
    web.staff_login("not-admin")
    assert web.client.get(f"{API}/admin/audit").status_code == 401


def test_a_new_admin_token_ends_admin_sessions(web: Web) -> None:
    web.client.post(f"{API}/login/admin", json={"token": web.admin_token})
    assert web.client.get(f"{API}/admin/audit").status_code == 200
    rotated = web.world.settings.with_overrides(admin_token="rotated-" + "z" * 30)
    other = TestClient(create_app(rotated, db=web.world.db, ports=web.world.ports, mount_status=False))
    other.cookies.set("jpki_admin", web.client.cookies["jpki_admin"])
    assert other.get(f"{API}/admin/audit").status_code == 401


def test_https_cookies_are_secure(web: Web) -> None:
    secure = TestClient(web.client.app, base_url="https://testserver")
    answer = secure.post(f"{API}/login/admin", json={"token": web.admin_token})
    assert "secure" in _cookie_attributes(answer, "jpki_admin")
    assert "secure" in _cookie_attributes(answer, "jpki_admin_csrf")


def test_the_login_form(web: Web) -> None:
    _add(web, "form.user")
    page = web.client.get("/login", params={"role": "staff", "next": "/counter"})
    assert page.status_code == 200 and 'action="/api/v1/login/staff"' in page.text
    assert "script-src 'none'" in page.headers["content-security-policy"]
    form = {"staff_id": "form.user", "password": PASSWORD, "next": "/counter"}
    posted = web.client.post(f"{API}/login/staff", data=form, follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["location"] == "/counter"
    assert "jpki_staff=" in posted.headers["set-cookie"]
    evil = web.client.post(
        f"{API}/login/staff", data=form, headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert evil.status_code == 403  # login CSRF from another site
    away = web.client.post(f"{API}/login/staff", data={**form, "next": "//evil.example/x"}, follow_redirects=False)
    assert away.headers["location"] == "/counter"  # no open redirect
    failed = web.client.post(f"{API}/login/staff", data={**form, "password": "nope"}, follow_redirects=False)
    assert failed.status_code == 303 and "failed=1" in failed.headers["location"]
    assert "違います" in web.client.get(failed.headers["location"]).text
    admin_page = web.client.get("/login", params={"role": "admin", "next": "https://evil.example"})
    assert 'value="/admin"' in admin_page.text


def test_staff_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from jpki_remote.cli import main
    from jpki_remote.config import load_settings
    from jpki_remote.store import Database
    from jpki_remote.terminal.staff import check_login

    monkeypatch.setenv("JPKI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["staff", "add", "cli.user", "--municipality", "13101", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["staff", "add", "cli.other", "--password-stdin"]) == 1
    assert main(["staff", "list"]) == 0
    out = capsys.readouterr().out
    assert "cli.user\tactive\t131016" in out and "cli.other" not in out.split("added")[-1]
    db = Database(load_settings().effective_database_url)
    with db.session() as s:
        assert check_login(s, "cli.user", PASSWORD) is not None
    assert main(["staff", "disable", "cli.user"]) == 0
    with db.session() as s:
        assert check_login(s, "cli.user", PASSWORD) is None
