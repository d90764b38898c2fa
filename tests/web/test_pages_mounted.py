"""The HTML pages are served by the application itself (``create_app`` includes ``web.pages.router``)."""

from __future__ import annotations

import pytest
from web_world import Web


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/", 'href="/kiosk"'),
        ("/kiosk", "holder.js"),
        ("/portal", "holder.js"),
        ("/counter", "counter.js"),
        ("/admin", "admin"),
        ("/admin/audit", "audit.js"),
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
