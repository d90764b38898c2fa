"""Audit tables: the events (leaves), the hashes of complete perfect subtrees, signed tree heads, and the single
writer row that serializes appends.

``audit_events.seq`` is the leaf index (0, 1, 2, … without gaps). ``audit_nodes`` holds, for every level ``l ≥ 1``
and index ``i``, the hash of the perfect subtree over leaves ``[i·2^l, (i+1)·2^l)`` once it is complete: about one
row per event in total, written in the same transaction as the event that completes it, never updated. Level-0
hashes are ``audit_events.leaf_hash``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jpki_remote.store.database import Base


class AuditRecord(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_procedure", "procedure_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    terminal_id: Mapped[str | None] = mapped_column(String(128))
    procedure_id: Mapped[str | None] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON, validated by audit.detail
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditNode(Base):
    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditTreeHead(Base):
    __tablename__ = "audit_tree_heads"
    __table_args__ = (Index("ix_audit_tree_heads_size", "tree_size"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary(128))


class AuditLogState(Base):
    """One row (id 1). Appends ``UPDATE … SET tree_size = tree_size + n RETURNING`` it first, which makes every
    append transaction a single writer: gapless, unique sequence numbers on PostgreSQL and SQLite alike."""

    __tablename__ = "audit_log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(BigInteger)
