"""The append-only audit log: ``AuditLog(db, signer)``.

Public interface (used by procedures, proofing, the web UI and the CLI)::

    log = AuditLog(db, signer_from_settings(settings))
    seq = log.append(AuditEvent(actor="holder:c-123", event_type="renewal.face_match", outcome="success",
                                terminal_id="kiosk-7", procedure_id="p-42", detail={"score": 0.31}))
    seqs = log.append_batch([...])             # one transaction, one signed tree head
    head = log.sign_head()                     # SignedTreeHead over everything committed so far
    proof = log.inclusion_proof(seq)           # InclusionProof; proof.verify() checks it locally
    path = log.consistency_proof(first, second)
    report = log.verify()                      # VerifyReport: recompute everything, report every problem

**Concurrency.** Each append transaction starts with ``UPDATE audit_log_state SET tree_size = tree_size + n …
RETURNING tree_size``: the row lock (PostgreSQL) or the database write lock (SQLite) makes appenders take turns, so
sequence numbers are gapless and unique across processes and servers, and the event rows, the new subtree hashes and
the new size commit together or not at all.

**Cost.** Storage: one event row and on average one ``audit_nodes`` row per event. An append reads the O(log n)
frontier hashes and writes O(1) amortized rows. Proofs and roots read O(log² n) stored hashes in one query — no
recomputation over the log, so millions of events cost the same as thousands. ``verify()`` is the one O(n) operation:
it streams every event in chunks with O(log n) memory.

**Tree heads.** ``append_batch`` signs a head at its end; ``append`` signs one when the last head this process
signed is older than ``sth_interval_seconds`` (so a busy log gets a head at least every interval; a worker or
``jpki-remote audit sign`` can also call :meth:`AuditLog.sign_head`). Events after the latest head are reported by
``verify`` as "not yet covered": deletion of those is only detectable once a head covers them.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from jpki_remote.audit import merkle
from jpki_remote.audit.events import AuditEvent, RecordedEvent, as_utc, leaf_data
from jpki_remote.audit.models import AuditLogState, AuditNode, AuditRecord, AuditTreeHead
from jpki_remote.audit.signing import SignedTreeHead, TreeHeadSigner, tree_head_bytes, verify_head
from jpki_remote.store.database import Database

VERIFY_CHUNK = 5000
MAX_REPORTED_PROBLEMS = 50


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    tree_size: int
    leaf_hash: bytes
    path: list[bytes]
    root_hash: bytes
    head: SignedTreeHead | None  # the signed head with this tree size, if there is one

    def verify(self) -> None:
        """Raise :class:`merkle.ProofError` unless the path leads from the leaf to ``root_hash``."""
        merkle.verify_inclusion(self.seq, self.tree_size, self.leaf_hash, self.path, self.root_hash)
        if self.head is not None and self.head.root_hash != self.root_hash:
            raise merkle.ProofError("the signed head for this size has a different root")

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "path": [h.hex() for h in self.path],
            "root_hash": self.root_hash.hex(),
            "signed_head": None
            if self.head is None
            else {
                "tree_size": self.head.tree_size,
                "timestamp_ms": self.head.timestamp_ms,
                "root_hash": self.head.root_hash.hex(),
                "key_id": self.head.key_id,
                "signature": self.head.signature.hex(),
            },
        }


@dataclass
class VerifyReport:
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    heads: int = 0
    latest_head: SignedTreeHead | None = None
    root_hash: bytes = merkle.EMPTY_ROOT  # recomputed from the event contents
    uncovered: int = 0  # events after the latest signed head
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(message)

    def summary(self) -> str:
        lines = [f"events: {self.events}" + (f" (seq {self.first_seq}–{self.last_seq})" if self.events else "")]
        lines.append(f"recomputed root: {self.root_hash.hex()}")
        lines.append(f"signed tree heads: {self.heads}")
        if self.latest_head is not None:
            stamp = datetime.fromtimestamp(self.latest_head.timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
            lines.append(
                f"latest signed head: size {self.latest_head.tree_size}, {stamp}, key {self.latest_head.key_id}, "
                f"root {self.latest_head.root_hash.hex()}"
            )
        if self.uncovered:
            lines.append(f"not yet covered by a signed head: {self.uncovered} event(s)")
        if self.ok:
            lines.append("result: OK — every event, subtree hash, signed head and consistency proof checks out")
        else:
            lines.append(f"result: FAILED — {self.problem_count} problem(s)")
            lines.extend(f"  - {p}" for p in self.problems)
            if self.problem_count > len(self.problems):
                lines.append(f"  … and {self.problem_count - len(self.problems)} more")
        return "\n".join(lines)


def _insert_ignore(session: Session, model: type, values: dict[str, object]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    session.execute(dialect_insert(model).values(**values).on_conflict_do_nothing())


def _record_leaf(row: AuditRecord) -> bytes:
    return merkle.leaf_hash(
        leaf_data(
            row.seq,
            row.occurred_at,
            row.actor,
            row.terminal_id,
            row.procedure_id,
            row.event_type,
            row.outcome,
            row.detail,
        )
    )


def _head_of(row: AuditTreeHead) -> SignedTreeHead:
    return SignedTreeHead(row.tree_size, row.timestamp_ms, bytes(row.root_hash), row.key_id, bytes(row.signature))


def _recorded(row: AuditRecord) -> RecordedEvent:
    return RecordedEvent(
        seq=row.seq,
        occurred_at=as_utc(row.occurred_at),
        actor=row.actor,
        event_type=row.event_type,
        outcome=row.outcome,
        terminal_id=row.terminal_id,
        procedure_id=row.procedure_id,
        detail_json=row.detail,
        leaf_hash=bytes(row.leaf_hash),
    )


class AuditLog:
    """See the module docstring. ``signer`` may be ``None`` for read-only use (show, prove, verify)."""

    def __init__(
        self,
        db: Database,
        signer: TreeHeadSigner | None = None,
        *,
        sth_interval_seconds: float = 60.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.signer = signer
        self.sth_interval_seconds = sth_interval_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._state_ready = False
        self._last_signed_at: float | None = None

    # -- writing ---------------------------------------------------------------------------------------------

    def _ensure_state(self) -> None:
        if not self._state_ready:
            with self.db.session() as session:
                _insert_ignore(session, AuditLogState, {"id": 1, "tree_size": 0})
            self._state_ready = True

    def append(self, event: AuditEvent) -> int:
        """Record one event; returns its sequence number. Signs a tree head if the interval has passed."""
        due = self.signer is not None and (
            self._last_signed_at is None or time.monotonic() - self._last_signed_at >= self.sth_interval_seconds
        )
        return self.append_batch([event], sign=due)[0]

    def append_batch(self, events: Sequence[AuditEvent], *, sign: bool = True) -> list[int]:
        """Record ``events`` in one transaction (all or none) and, with a signer, sign the new tree head."""
        if not events:
            return []
        details = [event.validated_detail() for event in events]  # refuse the batch before touching the database
        self._ensure_state()
        moment = self._clock()
        with self.db.session() as session:
            new_size = session.execute(
                update(AuditLogState)
                .where(AuditLogState.id == 1)
                .values(tree_size=AuditLogState.tree_size + len(events))
                .returning(AuditLogState.tree_size)
            ).scalar_one()
            start = new_size - len(events)
            frontier = merkle.CompactRange.frontier(start)
            known = self._fetch(session, set(frontier))
            compact = merkle.CompactRange(start, [known[c] for c in frontier])
            rows: list[dict[str, object]] = []
            nodes: list[dict[str, object]] = []
            for offset, (event, detail) in enumerate(zip(events, details, strict=True)):
                seq = start + offset
                leaf = merkle.leaf_hash(
                    leaf_data(
                        seq,
                        moment,
                        event.actor,
                        event.terminal_id,
                        event.procedure_id,
                        event.event_type,
                        event.outcome,
                        detail,
                    )
                )
                rows.append(
                    {
                        "seq": seq,
                        "occurred_at": moment,
                        "actor": event.actor,
                        "terminal_id": event.terminal_id,
                        "procedure_id": event.procedure_id,
                        "event_type": event.event_type,
                        "outcome": event.outcome,
                        "detail": detail,
                        "leaf_hash": leaf,
                    }
                )
                nodes.extend({"level": lv, "idx": ix, "hash": h} for (lv, ix), h in compact.append(leaf))
            session.execute(insert(AuditRecord), rows)
            if nodes:
                session.execute(insert(AuditNode), nodes)
            if sign and self.signer is not None:
                self._store_head(session, new_size, compact.root())
        return list(range(start, new_size))

    def _store_head(self, session: Session, size: int, root: bytes) -> SignedTreeHead:
        assert self.signer is not None
        stamp = int(self._clock().timestamp() * 1000)
        signature = self.signer.sign(tree_head_bytes(size, stamp, root))
        session.add(
            AuditTreeHead(
                tree_size=size, timestamp_ms=stamp, root_hash=root, key_id=self.signer.key_id, signature=signature
            )
        )
        self._last_signed_at = time.monotonic()
        return SignedTreeHead(size, stamp, root, self.signer.key_id, signature)

    def sign_head(self) -> SignedTreeHead:
        """Sign and store a head over everything committed now (also for an empty log)."""
        if self.signer is None:
            raise RuntimeError("this AuditLog has no signer")
        self._ensure_state()
        with self.db.session() as session:
            size = self._size(session)
            return self._store_head(session, size, self._root(session, size))

    # -- reading ---------------------------------------------------------------------------------------------

    @staticmethod
    def _size(session: Session) -> int:
        return session.execute(select(AuditLogState.tree_size).where(AuditLogState.id == 1)).scalar_one_or_none() or 0

    def _fetch(self, session: Session, coords: set[merkle.Coord]) -> dict[merkle.Coord, bytes]:
        found: dict[merkle.Coord, bytes] = {}
        leaves = [i for level, i in coords if level == 0]
        inner = [(level, i) for level, i in coords if level > 0]
        if leaves:
            query = select(AuditRecord.seq, AuditRecord.leaf_hash).where(AuditRecord.seq.in_(leaves))
            for seq, h in session.execute(query):
                found[(0, seq)] = bytes(h)
        if inner:
            # Grouped by level so both SQLite and PostgreSQL use the (level, idx) primary key for every lookup
            # (a row-value IN list makes SQLite scan the table).
            by_level: dict[int, list[int]] = {}
            for level, i in inner:
                by_level.setdefault(level, []).append(i)
            condition = or_(*(and_(AuditNode.level == lv, AuditNode.idx.in_(ix)) for lv, ix in by_level.items()))
            for level, idx, h in session.execute(
                select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(condition)
            ):
                found[(level, idx)] = bytes(h)
        return found

    def _root(self, session: Session, size: int) -> bytes:
        return merkle.build_proof([(0, size)], lambda c: self._fetch(session, c))[0] if size else merkle.EMPTY_ROOT

    def size(self) -> int:
        with self.db.session() as session:
            return self._size(session)

    def root(self, tree_size: int | None = None) -> bytes:
        with self.db.session() as session:
            size = self._size(session) if tree_size is None else tree_size
            if size > self._size(session):
                raise merkle.ProofError(f"the log holds fewer than {size} events")
            return self._root(session, size)

    def heads(self) -> list[SignedTreeHead]:
        with self.db.session() as session:
            rows = session.scalars(select(AuditTreeHead).order_by(AuditTreeHead.tree_size, AuditTreeHead.id))
            return [_head_of(r) for r in rows]

    def latest_head(self) -> SignedTreeHead | None:
        with self.db.session() as session:
            row = session.scalars(
                select(AuditTreeHead).order_by(AuditTreeHead.tree_size.desc(), AuditTreeHead.id.desc()).limit(1)
            ).first()
            return None if row is None else _head_of(row)

    def event(self, seq: int) -> RecordedEvent | None:
        with self.db.session() as session:
            row = session.get(AuditRecord, seq)
            return None if row is None else _recorded(row)

    def events(
        self,
        *,
        procedure_id: str | None = None,
        after_seq: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[RecordedEvent]:
        """Events in sequence order (or newest first), optionally of one procedure, at most ``limit``."""
        query = select(AuditRecord)
        if procedure_id is not None:
            query = query.where(AuditRecord.procedure_id == procedure_id)
        if after_seq is not None:
            query = query.where(AuditRecord.seq > after_seq)
        query = query.order_by(AuditRecord.seq.desc() if newest_first else AuditRecord.seq).limit(limit)
        with self.db.session() as session:
            return [_recorded(r) for r in session.scalars(query)]

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """Proof that event ``seq`` (its leaf hash recomputed from the stored content) is in the tree of
        ``tree_size`` events — by default the latest signed head that covers it, else the current size."""
        with self.db.session() as session:
            row = session.get(AuditRecord, seq)
            if row is None:
                raise merkle.ProofError(f"there is no event {seq}")
            current = self._size(session)
            head_row = None
            if tree_size is None:
                head_row = session.scalars(
                    select(AuditTreeHead)
                    .where(AuditTreeHead.tree_size > seq, AuditTreeHead.tree_size <= current)
                    .order_by(AuditTreeHead.tree_size.desc(), AuditTreeHead.id.desc())
                    .limit(1)
                ).first()
                tree_size = head_row.tree_size if head_row is not None else current
            else:
                if not seq < tree_size <= current:
                    raise merkle.ProofError(f"event {seq} is not in a tree of {tree_size} (log size {current})")
                head_row = session.scalars(
                    select(AuditTreeHead).where(AuditTreeHead.tree_size == tree_size).order_by(AuditTreeHead.id.desc())
                ).first()
            # The path and the root in one query: the root is the last "range" asked for.
            *path, root = merkle.build_proof(
                [*merkle.inclusion_ranges(seq, tree_size), (0, tree_size)], lambda c: self._fetch(session, c)
            )
            return InclusionProof(
                seq=seq,
                tree_size=tree_size,
                leaf_hash=_record_leaf(row),
                path=path,
                root_hash=root,
                head=None if head_row is None else _head_of(head_row),
            )

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 consistency proof that the tree of ``first`` events is a prefix of the tree of ``second``."""
        with self.db.session() as session:
            return self._consistency(session, first, second)

    def _consistency(self, session: Session, first: int, second: int) -> list[bytes]:
        if second > self._size(session):
            raise merkle.ProofError(f"the log holds fewer than {second} events")
        return merkle.build_proof(merkle.consistency_ranges(first, second), lambda c: self._fetch(session, c))

    # -- verification ----------------------------------------------------------------------------------------

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {} if self.signer is None else {self.signer.key_id: self.signer.public_key()}

    def verify(self, public_keys: Mapping[str, Ed25519PublicKey] | None = None) -> VerifyReport:
        """Recompute the whole log from the stored events and check it against everything stored and signed.

        Checks: sequence numbers start at 0 and have no gaps or duplicates; each stored leaf hash equals the hash of
        the event's content; every stored subtree hash equals the recomputed one and there are no extra ones; the
        single-writer size equals the number of events; every signed head has a valid signature by a known key, a
        size the log still reaches, and the recomputed root; each pair of successive heads is linked by a
        consistency proof built from the stored hashes.
        """
        keys = dict(self.public_keys() if public_keys is None else public_keys)
        report = VerifyReport()
        with self.db.session() as session:
            heads = [_head_of(r) for r in session.scalars(select(AuditTreeHead).order_by(AuditTreeHead.tree_size))]
            report.heads = len(heads)
            report.latest_head = heads[-1] if heads else None
            wanted_sizes = sorted({h.tree_size for h in heads})
            roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in wanted_sizes else {}
            compact = merkle.CompactRange()
            pending_nodes: dict[merkle.Coord, bytes] = {}
            expected = 0
            size_iter = iter(s for s in wanted_sizes if s > 0)
            next_size = next(size_iter, None)
            ordered = select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=VERIFY_CHUNK)
            stream = session.execute(ordered)
            for row in stream.scalars():
                report.events += 1
                if report.first_seq is None:
                    report.first_seq = row.seq
                report.last_seq = row.seq
                if row.seq != expected:
                    if row.seq > expected:
                        report.problem(f"sequence gap: events {expected}–{row.seq - 1} are missing")
                    else:
                        report.problem(f"sequence out of order or duplicated at {row.seq}")
                    expected = row.seq
                expected += 1
                leaf = _record_leaf(row)
                if bytes(row.leaf_hash) != leaf:
                    report.problem(f"event {row.seq}: content does not match its stored leaf hash (changed row)")
                for coord, h in compact.append(leaf):
                    pending_nodes[coord] = h
                while next_size is not None and compact.size == next_size:
                    roots[next_size] = compact.root()
                    next_size = next(size_iter, None)
                if len(pending_nodes) >= VERIFY_CHUNK:
                    self._check_nodes(session, pending_nodes, report)
                    pending_nodes = {}
            self._check_nodes(session, pending_nodes, report)
            report.root_hash = compact.root()
            stored_nodes = session.execute(select(func.count()).select_from(AuditNode)).scalar_one()
            want_nodes = compact.size - bin(compact.size).count("1")
            if stored_nodes != want_nodes:
                report.problem(f"{stored_nodes} subtree hashes stored, {want_nodes} expected for {compact.size} events")
            state = self._size(session)
            if state != report.events:
                report.problem(f"the log's size counter says {state} events but {report.events} are stored")
            self._check_heads(session, heads, roots, keys, report)
            if heads:
                report.uncovered = max(0, report.events - heads[-1].tree_size)
        return report

    def _check_nodes(self, session: Session, computed: dict[merkle.Coord, bytes], report: VerifyReport) -> None:
        if not computed:
            return
        stored = self._fetch(session, set(computed))
        for coord in sorted(computed):
            if coord not in stored:
                report.problem(f"subtree hash level {coord[0]} index {coord[1]} is missing")
            elif stored[coord] != computed[coord]:
                report.problem(f"subtree hash level {coord[0]} index {coord[1]} does not match the events")

    def _check_heads(
        self,
        session: Session,
        heads: Sequence[SignedTreeHead],
        roots: Mapping[int, bytes],
        keys: Mapping[str, Ed25519PublicKey],
        report: VerifyReport,
    ) -> None:
        if not keys and heads:
            report.problem("no public key to check the signed tree heads with")
        for head in heads:
            label = f"signed head of size {head.tree_size}"
            key = keys.get(head.key_id)
            if keys and key is None:
                report.problem(f"{label} is signed by unknown key {head.key_id}")
            elif key is not None and not verify_head(head, key):
                report.problem(f"{label} has an invalid signature")
            if head.tree_size > report.events:
                report.problem(f"{label} covers more events than are stored ({report.events}): events were deleted")
            elif roots.get(head.tree_size) != head.root_hash:
                report.problem(f"{label}: its root does not match the events as stored now")
        for older, newer in itertools.pairwise(heads):
            if newer.tree_size > report.events:
                continue
            try:
                proof = self._consistency(session, older.tree_size, newer.tree_size)
                merkle.verify_consistency(older.tree_size, newer.tree_size, older.root_hash, newer.root_hash, proof)
            except merkle.ProofError as exc:
                report.problem(f"signed heads {older.tree_size} → {newer.tree_size} are not consistent: {exc}")
