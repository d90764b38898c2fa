"""The stored audit log on SQLite and PostgreSQL: appends, proofs, signed heads, tamper detection, concurrency."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update

from jpki_remote.audit import AuditEvent, AuditLog, DetailRejected, merkle
from jpki_remote.audit.events import leaf_data
from jpki_remote.audit.models import AuditNode, AuditRecord, AuditTreeHead
from jpki_remote.audit.signing import load_or_create_signer
from jpki_remote.store import Database


def _event(i: int, procedure: str = "p-1") -> AuditEvent:
    return AuditEvent(
        actor="holder:card-1",
        event_type="renewal.step",
        outcome="success" if i % 5 else "failure",
        terminal_id="kiosk-7",
        procedure_id=procedure,
        detail={"step": i, "pin_kind": "auth"},
    )


@pytest.fixture
def log(database: Database, tmp_path: Path) -> AuditLog:
    return AuditLog(database, load_or_create_signer(tmp_path / "audit-key.pem"), sth_interval_seconds=3600)


def _fill(log: AuditLog, batches: list[int]) -> None:
    """Append events in batches; each batch ends with a signed head."""
    n = 0
    for size in batches:
        log.append_batch([_event(n + i, f"p-{(n + i) % 3}") for i in range(size)])
        n += size


def _rebuild_hashes(db: Database) -> None:
    """What an attacker with database access (but not the signing key) would do after editing rows: recompute every
    leaf hash and subtree hash so the stored tree is self-consistent again."""
    with db.session() as s:
        rows = s.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
        s.execute(delete(AuditNode))
        compact = merkle.CompactRange()
        for position, row in enumerate(rows):
            row.seq = position if row.seq != position else row.seq
            leaf = merkle.leaf_hash(
                leaf_data(row.seq, row.occurred_at, row.actor, row.terminal_id, row.procedure_id, row.event_type,
                          row.outcome, row.detail)
            )  # fmt: skip
            row.leaf_hash = leaf
            for (level, idx), h in compact.append(leaf):
                s.add(AuditNode(level=level, idx=idx, hash=h))


def test_append_gives_gapless_sequence_and_a_clean_verify(log: AuditLog) -> None:
    seqs = [log.append(_event(i)) for i in range(5)]
    seqs += log.append_batch([_event(i) for i in range(5, 12)])
    assert seqs == list(range(12))
    report = log.verify()
    assert report.ok, report.summary()
    assert report.events == 12 and report.uncovered == 0
    assert report.root_hash == log.root() == log.latest_head().root_hash
    assert "OK" in report.summary()


def test_events_round_trip_and_filter_by_procedure(log: AuditLog) -> None:
    _fill(log, [9])
    mine = log.events(procedure_id="p-1")
    assert [e.seq for e in mine] == [1, 4, 7]
    assert mine[0].detail == {"step": 1, "pin_kind": "auth"}
    assert mine[0].occurred_at.tzinfo is not None
    assert log.event(100) is None


def test_inclusion_proofs_verify_against_the_signed_head(log: AuditLog) -> None:
    _fill(log, [3, 5, 13])
    head = log.latest_head()
    assert head is not None and head.tree_size == 21
    for seq in range(21):
        proof = log.inclusion_proof(seq)
        assert proof.tree_size == 21 and proof.head == head
        proof.verify()
        merkle.verify_inclusion(seq, 21, proof.leaf_hash, proof.path, head.root_hash)
    early = log.inclusion_proof(2, tree_size=3)
    early.verify()
    assert early.head is not None and early.head.tree_size == 3
    with pytest.raises(merkle.ProofError):
        log.inclusion_proof(5, tree_size=3)


def test_consistency_between_signed_heads(log: AuditLog) -> None:
    _fill(log, [4, 3, 9, 1])
    heads = log.heads()
    assert [h.tree_size for h in heads] == [4, 7, 16, 17]
    for older in heads:
        for newer in heads:
            if older.tree_size <= newer.tree_size:
                proof = log.consistency_proof(older.tree_size, newer.tree_size)
                merkle.verify_consistency(older.tree_size, newer.tree_size, older.root_hash, newer.root_hash, proof)


def test_single_appends_sign_heads_by_interval(database: Database, tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path / "k.pem")
    every_time = AuditLog(database, signer, sth_interval_seconds=0)
    for i in range(3):
        every_time.append(_event(i))
    assert [h.tree_size for h in every_time.heads()] == [1, 2, 3]
    rarely = AuditLog(database, signer, sth_interval_seconds=3600)
    for i in range(3):
        rarely.append(_event(i))
    assert [h.tree_size for h in rarely.heads()] == [1, 2, 3, 4]  # the first append of a process signs
    report = rarely.verify()
    assert report.ok and report.uncovered == 2
    rarely.sign_head()
    assert rarely.verify().uncovered == 0


def test_rejected_detail_writes_nothing(log: AuditLog) -> None:
    log.append(_event(0))
    with pytest.raises(DetailRejected):
        log.append_batch([_event(1), AuditEvent(actor="system", event_type="x", outcome="info", detail={"pin": 1})])
    assert log.size() == 1
    assert log.verify().ok


def test_empty_log_verifies(log: AuditLog) -> None:
    report = log.verify()
    assert report.ok and report.events == 0
    head = log.sign_head()
    assert head.tree_size == 0 and head.root_hash == merkle.EMPTY_ROOT
    assert log.verify().ok


# ------------------------------------------------------------------------------------------------ tamper detection


def _problems(log: AuditLog) -> str:
    report = log.verify()
    assert not report.ok, "tampering went unnoticed"
    return "\n".join(report.problems)


def test_changed_event_is_detected(log: AuditLog, database: Database) -> None:
    _fill(log, [10])
    with database.session() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == 4).values(outcome="refused"))
    assert "event 4: content does not match" in _problems(log)


def test_changed_event_with_recomputed_hashes_is_caught_by_the_signed_head(log: AuditLog, database: Database) -> None:
    _fill(log, [10])
    with database.session() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == 4).values(actor="staff:someone-else"))
    _rebuild_hashes(database)
    problems = _problems(log)
    assert "content does not match" not in problems  # the attacker made the table self-consistent…
    assert "signed head of size 10: its root does not match" in problems  # …but cannot re-sign the head
    with pytest.raises(merkle.ProofError):
        log.inclusion_proof(4).verify()  # the proof reaches the new root, not the signed one


def test_deleted_middle_row_is_detected(log: AuditLog, database: Database) -> None:
    _fill(log, [10])
    with database.session() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq == 5))
    problems = _problems(log)
    assert "sequence gap: events 5–5 are missing" in problems


def test_deleted_newest_rows_are_detected_against_an_earlier_head(log: AuditLog, database: Database) -> None:
    _fill(log, [6, 4])
    with database.session() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq >= 7))
        s.execute(delete(AuditNode).where(AuditNode.level > 0))
        s.execute(text("UPDATE audit_log_state SET tree_size = 7"))
        s.execute(delete(AuditTreeHead).where(AuditTreeHead.tree_size == 10))
    _rebuild_hashes(database)
    with database.session() as s:  # the attacker also keeps a (forged) newest head — without the key it cannot sign
        s.add(AuditTreeHead(tree_size=10, timestamp_ms=1, root_hash=b"\0" * 32, key_id="x", signature=b"\0" * 64))
    problems = _problems(log)
    assert "covers more events than are stored (7)" in problems
    assert "unknown key" in problems


def test_truncation_below_a_signed_head_is_detected(log: AuditLog, database: Database) -> None:
    _fill(log, [6, 4])
    with database.session() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq >= 8))
        s.execute(text("UPDATE audit_log_state SET tree_size = 8"))
    _rebuild_hashes(database)
    assert "signed head of size 10 covers more events than are stored (8)" in _problems(log)


def test_reordered_rows_are_detected(log: AuditLog, database: Database) -> None:
    _fill(log, [10])
    with database.session() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(seq=-1))
        s.execute(update(AuditRecord).where(AuditRecord.seq == 4).values(seq=3))
        s.execute(update(AuditRecord).where(AuditRecord.seq == -1).values(seq=4))
    problems = _problems(log)
    assert "event 3: content does not match" in problems and "event 4: content does not match" in problems
    _rebuild_hashes(database)
    assert "signed head of size 10: its root does not match" in _problems(log)


def test_altered_subtree_hash_and_forged_signature_are_detected(log: AuditLog, database: Database) -> None:
    _fill(log, [8])
    with database.session() as s:
        s.execute(update(AuditNode).where(AuditNode.level == 2, AuditNode.idx == 1).values(hash=b"\1" * 32))
        head = s.scalars(select(AuditTreeHead)).one()
        head.signature = bytes(64)
    problems = _problems(log)
    assert "subtree hash level 2 index 1 does not match" in problems
    assert "invalid signature" in problems


# ------------------------------------------------------------------------------------------------ concurrency


def _append_worker(url: str, key_path: str, worker: int, count: int, start: multiprocessing.synchronize.Event) -> None:
    db = Database(url)
    log = AuditLog(db, load_or_create_signer(Path(key_path)), sth_interval_seconds=0.05)
    start.wait(30)
    for i in range(count):
        if i % 10 == 9:
            log.append_batch([_event(i, f"w{worker}") for _ in range(3)])
        else:
            log.append(_event(i, f"w{worker}"))
    db.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("processes", [3])
def test_concurrent_appends_from_several_processes(database: Database, tmp_path: Path, processes: int) -> None:
    key = tmp_path / "shared-key.pem"
    load_or_create_signer(key)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [
        ctx.Process(target=_append_worker, args=(database.url, str(key), w, 30, start)) for w in range(processes)
    ]
    for p in workers:
        p.start()
    start.set()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0
    per_worker = 27 + 3 * 3  # 27 single appends and 3 batches of 3
    log = AuditLog(database, load_or_create_signer(key))
    with database.session() as s:
        seqs = list(s.scalars(select(AuditRecord.seq).order_by(AuditRecord.seq)))
    assert seqs == list(range(processes * per_worker))
    report = log.verify()
    assert report.ok, report.summary()
    assert report.heads >= processes
    for worker in range(processes):
        assert len(log.events(procedure_id=f"w{worker}", limit=1000)) == per_worker
