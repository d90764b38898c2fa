"""The HTML pages are served by the application itself (``create_app`` includes ``web.pages.router``)."""

from __future__ import annotations

from typing import Any

import pytest
from web_world import Web

API = "/api/v1"


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/", 'href="/kiosk"'),
        ("/kiosk", "holder.js"),
        ("/portal", "holder.js"),
        ("/counter", "counter.js"),
        ("/admin", "admin"),
        ("/admin/stats", "admin"),
    ],
)
def test_pages_answer_with_their_content(web: Web, path: str, marker: str) -> None:
    response = web.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert marker in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


def test_the_audit_page_is_for_the_signed_in_admin_only(web: Web) -> None:
    """The audit browser is served on the admin sign-in (cookie session) like the rest of the admin UI: anyone else
    is sent to the sign-in form, which comes back to the page; its API calls ride on the same session."""
    sign_in = "/login?role=admin&next=%2Fadmin%2Faudit"

    def refused(response: Any) -> bool:
        answer = (response.status_code, response.headers.get("location"), "audit.js" in response.text)
        return answer == (303, sign_in, False)

    assert refused(web.client.get("/admin/audit", follow_redirects=False))
    # the bearer admin token is for API clients, not a way into the page; a staff sign-in is not an admin one
    bearer = {"Authorization": f"Bearer {web.admin_token}"}
    assert refused(web.client.get("/admin/audit", headers=bearer, follow_redirects=False))
    web.staff_login("kato")
    assert refused(web.client.get("/admin/audit", follow_redirects=False))
    web.client.cookies.set("jpki_admin", "forged-" + "x" * 40)
    assert refused(web.client.get("/admin/audit", follow_redirects=False))
    assert web.client.get(f"{API}/admin/audit").status_code == 401
    web.client.cookies.clear()

    form = web.client.post(
        f"{API}/login/admin", data={"token": web.admin_token, "next": "/admin/audit"}, follow_redirects=False
    )
    assert form.status_code == 303 and form.headers["location"] == "/admin/audit"
    page = web.client.get("/admin/audit", follow_redirects=False)
    assert page.status_code == 200 and "audit.js" in page.text
    assert 'id="admin-token"' not in page.text  # no token field in the page any more
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    listing = web.client.get(f"{API}/admin/audit", params={"limit": 5})  # what audit.js asks, with the cookie only
    assert listing.status_code == 200 and "events" in listing.json()

    web.client.post(f"{API}/logout", json={"role": "admin"})
    assert refused(web.client.get("/admin/audit", follow_redirects=False))


def test_only_a_loopback_agent_reaches_the_csp(web: Web) -> None:
    local = web.client.get("/kiosk", params={"agent": "http://127.0.0.1:8765"})
    assert "connect-src 'self' http://127.0.0.1:8765" in local.headers["content-security-policy"]
    remote = web.client.get("/kiosk", params={"agent": "http://evil.example:8765"})
    assert "evil.example" not in remote.headers["content-security-policy"]


def test_static_files_of_the_pages_are_served(web: Web) -> None:
    script = web.client.get("/static/pages/js/agent.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "/v1/status" in script.text
    assert web.client.get("/static/pages/css/app.css").status_code == 200
    assert web.client.get("/static/pages/../../app.py").status_code == 404
    assert web.client.get("/static/pages/js/nothing.js").status_code == 404


def test_the_api_is_still_json_next_to_the_pages(web: Web) -> None:
    assert web.client.get("/api/v1/health").json()["status"] == "ok"
    missing = web.client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
