"""The admin audit page in a real chromium, on the admin sign-in like the rest of the admin UI: a visitor who is
not signed in gets the sign-in form (and no audit data), the admin signs in there and comes back to the page, whose
scripts list the events and check a proof over the same cookie session; when the session ends, the page goes back
to the sign-in form."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import RunningServer, sign_in_on_the_form
from jpki_remote.audit.events import AuditEvent
from jpki_remote.audit.log import AuditLog
from jpki_remote.audit.signing import load_or_create_signer, signing_key_path

EVENTS = 5


@pytest.fixture(scope="module")
def audited(pages_server: RunningServer) -> RunningServer:
    if not pages_server.full_app:
        pytest.fail("the admin audit page needs the whole application (sign-in and API)")
    settings, db = pages_server.app.state.settings, pages_server.app.state.db
    log = AuditLog(db, load_or_create_signer(signing_key_path(settings)))
    log.append_batch(
        [
            AuditEvent(actor=f"holder:c{i:04d}", event_type="renewal.face_match", outcome="success",
                       terminal_id="tkiosk01", procedure_id=f"p{i:04d}", detail={"attempt_count": 1})
            for i in range(EVENTS)
        ]
    )
    return pages_server


def test_the_audit_page_needs_the_admin_sign_in(audited: RunningServer, browser_factory: Any) -> None:
    from jpki_remote.web.app import admin_token

    page = browser_factory().new_context().new_page()
    api_calls: list[Any] = []
    page.on("request", lambda r: api_calls.append(r) if "/api/v1/admin/" in r.url else None)
    page.goto(audited.url + "/admin/audit")
    assert "/login?role=admin" in page.url
    assert page.locator("#audit-table").count() == 0 and api_calls == []

    sign_in_on_the_form(page, audited.url, "/admin/audit", admin_token(audited.app.state.settings))
    # a function, not an expression: Playwright polls an expression with eval, which the page's CSP refuses
    page.wait_for_function(f"() => document.querySelectorAll('#audit-table tbody tr').length >= {EVENTS}",
                           timeout=30_000)
    assert page.locator("#admin-token").count() == 0  # no token field: the sign-in is the credential
    assert api_calls and all("authorization" not in r.headers for r in api_calls)  # the cookie session only
    page.locator("#audit-table tbody tr .verify").first.click()
    page.wait_for_selector("[data-verified]", timeout=30_000)
    assert page.locator("[data-verified]").first.get_attribute("data-verified") == "yes"

    assert page.request.post(audited.url + "/api/v1/logout", data={"role": "admin"}).status == 204
    page.click("#audit-filter button[type=submit]")  # the next API call is refused: back to the sign-in form
    page.wait_for_url("**/login?role=admin*", timeout=30_000)
    page.goto(audited.url + "/admin/audit")
    assert "/login?role=admin" in page.url
