"""Two terminals racing on one card: exactly one procedure takes it (the UNIQUE ``active_card`` constraint).

Since finding S-5 the card is taken at the card proof — the first moment the card has shown it is there — not at
start: every racer's start succeeds, each one's card signs its own challenge, and the racers deliver that last card
answer at once. One takes the card and goes on; every other one ends with ``card_busy``. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from procedure_world import PINS, IssuedCard, make_world

from jpki_remote.procedures.engine import Engine
from jpki_remote.procedures.models import Procedure
from jpki_remote.store import Database
from jpki_remote.terminal.agent import AgentCore, ScriptedPinPad

RACERS = 8


def _start(engine: Engine, issued: IssuedCard, terminal_id: str) -> dict:
    return engine.start(
        kind="renewal", target="certificates", channel="counter", card_id=issued.card_id, terminal_id=terminal_id
    )


def _exchange(engine: Engine, core: AgentCore, reply: dict, terminal_id: str) -> dict:
    exchange = reply["exchange"]
    assert exchange["status"] == "card", reply
    return engine.exchange(reply["id"], terminal_id, seq=exchange["seq"], responses=core.perform(exchange["requests"]))


def test_racing_terminals_exactly_one_takes_the_card(database: Database, tmp_path: Path, faces_dir: Path) -> None:
    world = make_world(database, tmp_path, faces_dir)
    issued = world.issue_card()
    engine = world.engine()
    core = AgentCore(issued.card.transmit, ScriptedPinPad(pins={"auth_pin": PINS["auth_pin"]}))

    # how many card round trips the card proof takes (the same for every run on this card)
    reply, rounds = _start(engine, issued, "t-probe"), 0
    while reply["state"] == "card_proof":
        reply, rounds = _exchange(engine, core, reply, "t-probe"), rounds + 1
    assert reply["status"] == "active" and reply["state"] == "proofs", reply["error"]
    engine.cancel(reply["id"], "t-probe")  # ends it and lets the card go
    last_probe = reply["id"]

    # every racer starts (nothing is taken at start) and runs its card proof up to the card's last answer
    last: list[tuple[str, str, int, list[bytes]]] = []
    for number in range(RACERS):
        terminal_id = f"t-{number}"
        reply = _start(engine, issued, terminal_id)
        assert reply["status"] == "active" and reply["state"] == "card_proof", reply
        for _ in range(rounds - 1):
            reply = _exchange(engine, core, reply, terminal_id)
        exchange = reply["exchange"]
        last.append((reply["id"], terminal_id, exchange["seq"], core.perform(exchange["requests"])))

    barrier = threading.Barrier(RACERS)
    outcomes: dict[str, str] = {}
    lock = threading.Lock()

    def terminal(procedure_id: str, terminal_id: str, seq: int, responses: list[bytes]) -> None:
        racer = world.engine()
        barrier.wait()
        answer = racer.exchange(procedure_id, terminal_id, seq=seq, responses=responses)
        outcome = "won" if answer["status"] == "active" else (answer["error"] or {}).get("code", answer["status"])
        with lock:
            outcomes[procedure_id] = f"{outcome}:{answer['state']}"

    threads = [threading.Thread(target=terminal, args=args) for args in last]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(outcomes) == RACERS, outcomes
    winners = [pid for pid, outcome in outcomes.items() if outcome.startswith("won:")]
    assert len(winners) == 1, outcomes
    assert outcomes[winners[0]] == "won:proofs"  # past the card proof, waiting for the staff check
    assert {o.split(":")[0] for pid, o in outcomes.items() if pid not in winners} == {"card_busy"}, outcomes
    with database.session() as session:
        held = {p.id: p.active_card for p in session.query(Procedure).filter(Procedure.active_card.is_not(None))}
    assert held == {winners[0]: issued.card_id}  # the losers hold nothing; the winner holds the card
    # every loser's end is in the audit log once (workers flushing the audit backlog at once do not append twice)
    ended = Counter(e.procedure_id for e in world.audit.events(limit=1000) if e.event_type == "renewal.ended")
    assert ended == Counter({pid: 1 for pid in outcomes if pid not in winners} | {last_probe: 1}), ended
    assert world.audit.verify().ok
