"""`jpki-remote bench audit`: the cost of the tamper evidence, each figure against a plain-database reference
measured in the same run on the same (temporary SQLite) database.

* batch appends (100 events, one signed head per batch) vs inserting the same rows without any hashing;
* single appends (one transaction each) vs single plain inserts;
* one inclusion proof vs one primary-key lookup of the event;
* the full ``verify`` vs simply reading every event row.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from jpki_remote.audit.events import AuditEvent
from jpki_remote.audit.log import AuditLog
from jpki_remote.audit.models import AuditRecord
from jpki_remote.audit.signing import load_or_create_signer
from jpki_remote.store import Database


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        actor=f"holder:card-{i % 997}",
        event_type="renewal.step",
        outcome="success",
        terminal_id="kiosk-1",
        procedure_id=f"p-{i // 8}",
        detail={"step": i % 8, "score": 0.31},
    )


def _plain_row(seq: int) -> dict[str, object]:
    e = _event(seq)
    return {
        "seq": seq,
        "occurred_at": datetime.now(UTC),
        "actor": e.actor,
        "terminal_id": e.terminal_id,
        "procedure_id": e.procedure_id,
        "event_type": e.event_type,
        "outcome": e.outcome,
        "detail": '{"score":0.31,"step":1}',
        "leaf_hash": b"\0" * 32,
    }


def _line(name: str, ours: float, reference: float, unit: str, per: int) -> None:
    print(f"{name:<34} {ours / per * 1000:9.3f} ms/{unit}   reference {reference / per * 1000:9.3f} ms/{unit}   "
          f"ratio {ours / reference:6.2f}×")  # fmt: skip


def run_benchmark(events: int) -> None:
    with tempfile.TemporaryDirectory(prefix="jpki-bench-audit-") as tmp:
        root = Path(tmp)
        db = Database(f"sqlite:///{root / 'log.db'}")
        ref = Database(f"sqlite:///{root / 'ref.db'}")
        db.create_schema()
        ref.create_schema()
        log = AuditLog(db, load_or_create_signer(root / "key.pem"), sth_interval_seconds=3600)
        batch = 100
        print(f"audit log benchmark: {events} events, SQLite in {tmp}")

        start = time.perf_counter()
        for first in range(0, events, batch):
            log.append_batch([_event(i) for i in range(first, min(events, first + batch))])
        ours = time.perf_counter() - start
        start = time.perf_counter()
        for first in range(0, events, batch):
            with ref.session() as s:
                s.execute(insert(AuditRecord), [_plain_row(i) for i in range(first, min(events, first + batch))])
        _line("append, batches of 100", ours, time.perf_counter() - start, "event", events)

        singles = 300
        start = time.perf_counter()
        for i in range(singles):
            log.append(_event(i))
        ours = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(singles):
            with ref.session() as s:
                s.execute(insert(AuditRecord), [_plain_row(events + i)])
        _line("append, one transaction each", ours, time.perf_counter() - start, "event", singles)
        log.sign_head()

        total = log.size()
        picks = [secrets.randbelow(total) for _ in range(500)]
        start = time.perf_counter()
        for seq in picks:
            log.inclusion_proof(seq).verify()
        ours = time.perf_counter() - start
        start = time.perf_counter()
        for seq in picks:
            with ref.session() as s:
                s.get(AuditRecord, seq)
        _line(f"inclusion proof + verify (n={total})", ours, time.perf_counter() - start, "proof", len(picks))

        start = time.perf_counter()
        report = log.verify()
        ours = time.perf_counter() - start
        start = time.perf_counter()
        with ref.session() as s:
            for _row in s.execute(select(AuditRecord).execution_options(yield_per=5000)).scalars():
                pass
        _line("verify whole log", ours, time.perf_counter() - start, "event", total)
        print(f"verify result: {'OK' if report.ok else 'FAILED'}; {total} events, {report.heads} signed heads")
        db.dispose()
        ref.dispose()
