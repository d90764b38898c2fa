"""The analytics router (JSON endpoints) and the dashboard fragment, including its JS in a real browser."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from jpki_remote.analytics.web import create_router, dashboard_fragment
from jpki_remote.store import Database


def _app(database: Database | None) -> FastAPI:
    app = FastAPI()
    app.include_router(create_router(database, today=lambda: datetime(2025, 6, 1)))

    @app.get("/admin", response_class=HTMLResponse)
    def admin() -> str:
        head = "<!DOCTYPE html><html lang='ja'><head><meta charset='utf-8'><title>admin</title></head>"
        return f"{head}<body>{dashboard_fragment()}</body></html>"

    return app


@pytest.fixture
def seeded(sqlite_database: Database, seed_live: Callable[[Database], None]) -> Database:
    seed_live(sqlite_database)
    return sqlite_database


def test_forecast_and_load_fall_back_to_the_minato_example_without_a_database() -> None:
    client = TestClient(_app(None))
    forecast = client.get("/api/analytics/forecast").json()
    assert forecast["source"] == "minato"
    assert len(forecast["months"]) == 120 and forecast["months"][0]["month"] == "2022-06"
    none = client.get("/api/analytics/load", params={"share": 0}).json()
    half = client.get("/api/analytics/load", params={"share": 0.5}).json()
    assert none["summary"]["hours_saved"] == 0
    assert half["summary"]["hours_saved_per_year"] > 1000
    assert half["months"][40]["counter_visits_moved"] < half["months"][40]["counter_visits"]
    # overloaded months have no steady-state wait: null in JSON, never Infinity
    assert none["summary"]["peak_mean_wait_minutes"] is None
    assert "Infinity" not in client.get("/api/analytics/load", params={"share": 0}).text
    assert client.get("/api/analytics/load", params={"share": 1.5}).status_code == 422
    assert client.get("/api/analytics/load", params={"share": "lots"}).status_code == 422
    assert client.get("/api/analytics/live").status_code == 503
    assert client.get("/api/analytics/forecast", params={"source": "database"}).status_code == 503


def test_surge_endpoint() -> None:
    client = TestClient(_app(None))
    data = client.get("/api/analytics/surge", params={"share": 0.7}).json()
    base, moved = data["results"]
    assert base["share_moved"] == 0 and moved["share_moved"] == 0.7
    assert base["peak_backlog"] > moved["peak_backlog"]
    assert client.get("/api/analytics/surge", params={"windows": 0}).status_code == 422


def test_live_statistics_and_database_forecast(seeded: Database) -> None:
    client = TestClient(_app(seeded))
    live = client.get("/api/analytics/live").json()
    assert live["total"] == 4
    assert live["counter_visits_avoided"] == 1
    assert live["municipalities"]["13103"]["name"] == "港区"
    only = client.get("/api/analytics/live", params={"municipality": "23211"}).json()
    assert only["total"] == 2
    assert client.get("/api/analytics/live", params={"municipality": "1310"}).status_code == 422
    forecast = client.get("/api/analytics/forecast").json()
    assert forecast["source"] == "database"
    assert forecast["months"][0]["month"] == "2025-06"
    assert sum(m["certificate_expiries"] + m["card_expiries"] for m in forecast["months"]) > 0
    assert client.get("/api/analytics/forecast", params={"municipality": "99999"}).status_code == 404


def test_dashboard_fragment_is_self_contained() -> None:
    client = TestClient(_app(None))
    fragment = client.get("/api/analytics/dashboard").text
    assert '<input type="range" id="jpa-share"' in fragment
    assert '<label for="jpa-share">' in fragment
    assert 'src="/api/analytics/dashboard.js"' in fragment and "{{API}}" not in fragment
    assert not re.search(r"(src|href)=\"https?:", fragment)
    script = client.get("/api/analytics/dashboard.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert 'fetch(api + "/load?share="' in script.text
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", script.text)
    assert client.get("/api/analytics/dashboard.css").headers["content-type"].startswith("text/css")
    assert 'data-api="/x/y"' in dashboard_fragment("/x/y/")


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/api/analytics/dashboard.js", "text/javascript"), ("/api/analytics/dashboard.css", "text/css")],
)
def test_dashboard_script_and_style_declare_their_media_type(path: str, media_type: str) -> None:
    """The OpenAPI document says what these routes answer (not the default JSON), and they answer exactly that."""
    client = TestClient(_app(None))
    declared = client.get("/openapi.json").json()["paths"][path]["get"]["responses"]["200"]["content"]
    assert list(declared) == [media_type] and declared[media_type]["schema"] == {"type": "string"}
    answer = client.get(path)
    assert answer.status_code == 200 and answer.headers["content-type"] == f"{media_type}; charset=utf-8"


# ---- the fragment's JS in chromium ---------------------------------------------------------------------------------


@pytest.fixture
def server(seeded: Database) -> Iterator[str]:
    import uvicorn

    config = uvicorn.Config(_app(seeded), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = instance.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(timeout=10)


@pytest.mark.browser
def test_dashboard_slider_redraws_the_chart_in_a_browser(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(f"{server}/admin")
            expect(page.locator("[data-stat=total]")).to_have_text("4")
            expect(page.locator("[data-stat=counter_visits_avoided]")).to_have_text("1")
            expect(page.locator("#jpa-municipalities tbody tr")).to_have_count(2)
            chart = page.locator("#jpa-load-chart polyline")
            expect(chart).to_have_count(1)
            before = chart.get_attribute("points")
            expect(page.locator("[data-load=source]")).to_contain_text("live database")
            page.get_by_label("キオスク・オンラインへ移す割合").fill("20")
            expect(page.locator("#jpa-share-out")).to_have_text("20%")
            expect(page.locator("#jpa-load-desc")).to_contain_text("20% をキオスク")
            assert chart.get_attribute("points") != before
            # the seed's Minato table instead of the two cards in the test database
            page.get_by_label("発行実績").select_option("minato")
            expect(page.locator("[data-load=source]")).to_contain_text("Minato")
            saved_20 = page.locator("[data-load=hours_saved_per_year]").inner_text()
            page.get_by_label("キオスク・オンラインへ移す割合").fill("80")
            expect(page.locator("[data-load=hours_saved_per_year]")).not_to_have_text(saved_20)
            expect(page.locator("[data-load=peak_windows_needed]")).not_to_have_text("–")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert not errors
            assert all(url.startswith(server) for url in requests)  # nothing fetched from elsewhere
        finally:
            browser.close()
