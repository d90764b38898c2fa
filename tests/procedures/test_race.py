"""Two terminals racing on one card: exactly one procedure wins (the UNIQUE active_card constraint)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from procedure_world import make_world

from jpki_remote.procedures.errors import ProcedureError
from jpki_remote.store import Database

pytestmark = pytest.mark.postgres


def test_racing_terminals_on_postgresql(postgres_database: Database, tmp_path: Path, faces_dir: Path) -> None:
    world = make_world(postgres_database, tmp_path, faces_dir)
    issued = world.issue_card()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def terminal(number: int) -> None:
        engine = world.engine()
        barrier.wait()
        try:
            reply = engine.start(
                kind="renewal",
                target="certificates",
                channel="counter",
                card_id=issued.card_id,
                terminal_id=f"t-{number}",
            )
            result = "won:" + reply["id"]
        except ProcedureError as exc:
            result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=terminal, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [o for o in outcomes if o.startswith("won:")]
    assert len(outcomes) == 8 and len(winners) == 1
    assert sorted(set(outcomes) - set(winners)) == ["card_busy"]
