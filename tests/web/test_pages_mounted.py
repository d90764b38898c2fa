"""The HTML pages are served by the application itself (``create_app`` includes ``web.pages.router``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

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
    ],
)
def test_pages_answer_with_their_content(web: Web, path: str, marker: str) -> None:
    response = web.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert marker in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


# every admin page: what only the page shows, and the API call its scripts make (None: the page has no script of its
# own — the policy table is rendered on the server; its API twin is what an API client reads with the bearer token)
ADMIN_PAGES = [
    ("/admin", 'id="policy-table"', f"{API}/admin/policy"),
    ("/admin/audit", "audit.js", f"{API}/admin/audit?limit=5"),
    ("/admin/stats", "/api/analytics/dashboard.js", "/api/analytics/live"),
]


@pytest.mark.parametrize(("path", "marker", "api_call"), ADMIN_PAGES)
def test_admin_pages_are_for_the_signed_in_admin_only(web: Web, path: str, marker: str, api_call: str) -> None:
    """Every admin page is served on the admin sign-in (cookie session): anyone else is sent to the sign-in form,
    which comes back to the page; the page's API calls ride on the same session (no bearer token in the page)."""
    sign_in = "/login?" + urlencode({"role": "admin", "next": path})

    def refused(response: Any) -> bool:
        answer = (response.status_code, response.headers.get("location"), marker in response.text)
        return answer == (303, sign_in, False)

    assert refused(web.client.get(path, follow_redirects=False))
    # the bearer admin token is for API clients, not a way into the page; a staff sign-in is not an admin one
    bearer = {"Authorization": f"Bearer {web.admin_token}"}
    assert refused(web.client.get(path, headers=bearer, follow_redirects=False))
    assert web.client.get(api_call, headers=bearer).status_code == 200  # machine clients keep the bearer token
    web.staff_login("kato")
    assert refused(web.client.get(path, follow_redirects=False))
    web.client.cookies.set("jpki_admin", "forged-" + "x" * 40)
    assert refused(web.client.get(path, follow_redirects=False))
    assert web.client.get(api_call).status_code == 401
    web.client.cookies.clear()

    form = web.client.get(sign_in)  # the sign-in form comes back to the page
    assert form.status_code == 200 and f'name="next" value="{path}"' in form.text
    posted = web.client.post(f"{API}/login/admin", data={"token": web.admin_token, "next": path},
                             follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["location"] == path
    page = web.client.get(path, follow_redirects=False)
    assert page.status_code == 200 and marker in page.text
    assert 'id="admin-token"' not in page.text and "sessionStorage" not in page.text  # no token to paste or keep
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert web.client.get(api_call).status_code == 200  # with the cookie only, as the page's scripts ask

    # the page's own sign-out: a plain form post (no script), back to the start page
    assert 'action="/api/v1/logout"' in page.text and 'name="role" value="admin"' in page.text
    signed_out = web.client.post(f"{API}/logout", data={"role": "admin"}, follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/"
    assert refused(web.client.get(path, follow_redirects=False))
    assert web.client.get(api_call).status_code == 401


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
