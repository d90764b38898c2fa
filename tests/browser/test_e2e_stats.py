"""The admin dashboard's live statistics after ``jpki-remote demo --scripted`` (issue 6), in a real chromium.

The scripted demo runs every procedure against its own fresh data directory (started in the background by the
``scripted_demo`` fixture while the other end-to-end tests run); then ``jpki-remote serve`` is started on that data
directory, the administrator opens ``/admin/stats``, is sent to the plain sign-in form, signs in there with the
admin token and is brought back to the page.
The figures the page shows are compared with counts made here straight from the procedures table, with the
dashboard's published definitions (analytics/live.py): every procedure by channel; a counter visit avoided is a
completed renewal / PIN reset / PIN change / revocation / loss report on a kiosk or online.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e import ServerProcess, clean_env, free_port

from conftest import sign_in_on_the_form

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
COUNTER_KINDS = {"renewal", "pin_reset", "pin_change", "revocation", "loss_report"}


def expected_from_database(data_dir: Path) -> dict[str, Any]:
    from sqlalchemy import select

    from jpki_remote.procedures.models import Procedure
    from jpki_remote.store import Database

    db = Database(f"sqlite:///{data_dir / 'jpki.db'}")
    try:
        with db.session() as session:
            rows = session.execute(select(Procedure.kind, Procedure.channel, Procedure.status)).all()
    finally:
        db.dispose()
    channels = Counter(channel for _, channel, _ in rows)
    avoided = sum(1 for kind, channel, status in rows
                  if channel in ("kiosk", "online") and kind in COUNTER_KINDS and str(status.value) == "completed")
    return {"total": len(rows), "channels": channels, "avoided": avoided}


def test_admin_dashboard_shows_the_scripted_demo(scripted_demo: Any, browser_factory: Any, tmp_path: Path) -> None:
    code, output = scripted_demo.wait()
    assert code == 0 and "ALL OK" in output, output[-4000:]
    report = json.loads(scripted_demo.report.read_text())
    assert report["ok"] and len(report["procedures"]) >= 10
    expected = expected_from_database(scripted_demo.data_dir)
    assert expected["total"] >= len(report["procedures"]) and expected["avoided"] > 0, expected

    port, token = free_port(), secrets.token_urlsafe(24)
    env = clean_env(data_dir=str(scripted_demo.data_dir), admin_token=token,
                    public_base_url=f"http://127.0.0.1:{port}")
    server = ServerProcess(env, port, tmp_path / "server.log")
    try:
        page = browser_factory().new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(f"{server.url}/admin/stats")  # not signed in yet: the sign-in form, which comes back here
        sign_in_on_the_form(page, server.url, "/admin/stats", token)
        page.wait_for_function(
            "() => /^\\d/.test(document.querySelector('[data-stat=total]').textContent.trim())", timeout=60_000)
        shown = page.evaluate(
            """() => Object.fromEntries(Array.from(document.querySelectorAll('[data-stat]'))
                  .map((e) => [e.dataset.stat, e.textContent.trim()]))""")
        rows = page.eval_on_selector_all(
            "#jpa-municipalities tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent.trim()))")
        assert page.locator("#jpa-live-error").is_hidden()
    finally:
        server.stop()

    def number(text: str) -> int:
        return int(text.replace(",", "").split()[0])

    assert number(shown["total"]) == expected["total"], (shown, expected)
    for channel in ("kiosk", "online", "counter"):
        assert number(shown[f"by_channel.{channel}"]) == expected["channels"][channel], (channel, shown, expected)
    assert number(shown["counter_visits_avoided"]) == expected["avoided"], (shown, expected)
    assert shown["staff_hours_saved"] not in ("", "–")
    # one row per municipality: the demo's 港区 with the same channel counts
    [row] = rows
    assert "港区" in row[0] or "13103" in row[0], row
    assert [number(c) for c in row[1:5]] == [expected["channels"]["kiosk"], expected["channels"]["online"],
                                              expected["channels"]["counter"], expected["avoided"]], row
