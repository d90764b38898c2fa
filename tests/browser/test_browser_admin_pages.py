"""The policy page and the statistics page in a real chromium, on the admin sign-in like the audit page: a visitor
who is not signed in gets the sign-in form (and no admin data, no API call), the admin signs in there and comes back
to the page; the page's sign-out button ends the session; the statistics dashboard's scripts fetch the analytics
API over the same cookie session (no bearer token), and when the session ends their next call sends the page back to
the sign-in form."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import RunningServer, sign_in_on_the_form


@pytest.fixture
def admin_site(pages_server: RunningServer) -> tuple[str, str]:
    """The server's URL and its admin token."""
    from jpki_remote.web.app import admin_token

    if not pages_server.full_app:
        pytest.fail("the admin pages need the whole application (sign-in and API)")
    return pages_server.url, admin_token(pages_server.app.state.settings)


def _api_calls(page: Any) -> list[Any]:
    calls: list[Any] = []
    page.on("request", lambda r: calls.append(r) if "/api/" in r.url and "/api/v1/login" not in r.url else None)
    return calls


def test_the_policy_page_needs_the_admin_sign_in(admin_site: tuple[str, str], browser_factory: Any) -> None:
    url, token = admin_site
    page = browser_factory().new_context().new_page()
    page.goto(url + "/admin")
    assert "/login?role=admin" in page.url and page.locator("#policy-table").count() == 0

    sign_in_on_the_form(page, url, "/admin", token)
    assert page.locator("#policy-table tbody tr").count() > 0
    assert page.locator("#admin-token").count() == 0

    page.click("#admin-sign-out button")  # the page's own sign-out (a plain form post): back to the start page
    page.wait_for_url(url + "/", timeout=30_000)
    page.goto(url + "/admin")
    assert "/login?role=admin" in page.url and page.locator("#policy-table").count() == 0


def test_the_statistics_page_needs_the_admin_sign_in(admin_site: tuple[str, str], browser_factory: Any) -> None:
    url, token = admin_site
    page = browser_factory().new_context().new_page()
    calls = _api_calls(page)
    page.goto(url + "/admin/stats")
    assert "/login?role=admin" in page.url and page.locator("[data-analytics]").count() == 0 and calls == []

    sign_in_on_the_form(page, url, "/admin/stats", token)
    page.wait_for_function(
        "() => /^\\d/.test(document.querySelector('[data-stat=total]').textContent.trim())", timeout=30_000)
    page.wait_for_function("() => document.querySelector('#jpa-load-desc').textContent.length > 0", timeout=30_000)
    assert page.locator("#jpa-live-error").is_hidden() and page.locator("#jpa-load-error").is_hidden()
    fetched = {c.url.split("?")[0].removeprefix(url) for c in calls}
    assert {"/api/analytics/dashboard.js", "/api/analytics/live", "/api/analytics/load"} <= fetched, fetched
    assert all("authorization" not in c.headers for c in calls)  # the cookie session only

    assert page.request.post(url + "/api/v1/logout", data={"role": "admin"}).status == 204
    page.fill("#jpa-share", "40")  # the what-if asks the API again: refused, back to the sign-in form
    page.wait_for_url("**/login?role=admin*", timeout=30_000)
    assert "next=%2Fadmin%2Fstats" in page.url
