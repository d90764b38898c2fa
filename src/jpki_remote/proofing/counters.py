"""Where rate-limit counters and lockouts live: Redis in production, the database by default — one interface.

Both stores hold only opaque keys built by :mod:`jpki_remote.proofing.limits` (HMACs of the card id, terminal id
or client address), counts, and lockout records ``{until, reason}``.

* :class:`RedisCounters` — ``INCR`` + ``EXPIRE`` in one ``MULTI``/``EXEC`` transaction (atomic), ``MGET`` for
  reads, a small Lua script that keeps the later of two lockouts. Every key starts with the configured prefix.
* :class:`DatabaseCounters` — ``INSERT … ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count`` (atomic on
  PostgreSQL and SQLite), expired rows purged now and then.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from jpki_remote.proofing.models import Lockout, RateCounter
from jpki_remote.store import Database

if TYPE_CHECKING:
    import redis


@dataclass(frozen=True)
class LockRecord:
    until: datetime
    reason: str


class CounterStore(Protocol):
    def increment(self, key: str, ttl: timedelta, now: datetime) -> int:
        """Add one to ``key`` (created at 0, expiring after ``ttl``) and return the new count."""
        ...

    def counts(self, keys: Sequence[str], now: datetime) -> list[int]: ...

    def locks(self, keys: Sequence[str], now: datetime) -> list[LockRecord | None]:
        """The active lockouts (``until > now``) of ``keys``, ``None`` where there is none."""
        ...

    def lock(self, key: str, record: LockRecord, now: datetime) -> LockRecord:
        """Store a lockout; an existing later one is kept. Returns the lockout now in force."""
        ...

    def delete(self, keys: Sequence[str]) -> int: ...


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _upsert(session: Session):  # type: ignore[no-untyped-def]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class DatabaseCounters:
    PURGE_ONE_IN = 512  # on average every 512th increment also deletes expired rows

    def __init__(self, db: Database) -> None:
        self.db = db

    def increment(self, key: str, ttl: timedelta, now: datetime) -> int:
        with self.db.session() as session:
            insert = _upsert(session)
            statement = insert(RateCounter).values(key=key, count=1, expires_at=now + ttl)
            statement = statement.on_conflict_do_update(
                index_elements=["key"],
                set_={"count": RateCounter.count + 1, "expires_at": statement.excluded.expires_at},
            ).returning(RateCounter.count)
            count = int(session.execute(statement).scalar_one())
            if secrets.randbelow(self.PURGE_ONE_IN) == 0:
                self._purge(session, now)
            return count

    @staticmethod
    def _purge(session: Session, now: datetime) -> None:
        session.execute(delete(RateCounter).where(RateCounter.expires_at < now))
        session.execute(delete(Lockout).where(Lockout.until < now - timedelta(days=1)))

    def counts(self, keys: Sequence[str], now: datetime) -> list[int]:
        if not keys:
            return []
        with self.db.session() as session:
            rows = session.execute(
                select(RateCounter.key, RateCounter.count).where(
                    RateCounter.key.in_(keys), RateCounter.expires_at > now
                )
            ).all()
        found = {k: c for k, c in rows}
        return [int(found.get(k, 0)) for k in keys]

    def locks(self, keys: Sequence[str], now: datetime) -> list[LockRecord | None]:
        if not keys:
            return []
        with self.db.session() as session:
            rows = session.scalars(select(Lockout).where(Lockout.key.in_(keys))).all()
        found = {r.key: LockRecord(_utc(r.until), r.reason) for r in rows if _utc(r.until) > now}
        return [found.get(k) for k in keys]

    def lock(self, key: str, record: LockRecord, now: datetime) -> LockRecord:
        with self.db.session() as session:
            insert = _upsert(session)
            statement = insert(Lockout).values(key=key, until=record.until, reason=record.reason, created_at=now)
            statement = statement.on_conflict_do_update(
                index_elements=["key"],
                set_={"until": statement.excluded.until, "reason": statement.excluded.reason, "created_at": now},
                where=Lockout.until < statement.excluded.until,
            )
            session.execute(statement)
            row = session.get(Lockout, key)
            assert row is not None
            return LockRecord(_utc(row.until), row.reason)

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with self.db.session() as session:
            removed = session.execute(delete(RateCounter).where(RateCounter.key.in_(keys))).rowcount or 0
            removed += session.execute(delete(Lockout).where(Lockout.key.in_(keys))).rowcount or 0
            return removed


_KEEP_LATER_LOCK = """
local current = redis.call('GET', KEYS[1])
if current then
  local decoded = cjson.decode(current)
  if tonumber(decoded['until_ms']) >= tonumber(ARGV[2]) then return current end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return ARGV[1]
"""


class RedisCounters:
    def __init__(self, client: redis.Redis, prefix: str = "jpki:limits:") -> None:
        self.client = client
        self.prefix = prefix
        self._lock_script = client.register_script(_KEEP_LATER_LOCK)

    @classmethod
    def from_url(cls, url: str, prefix: str = "jpki:limits:") -> RedisCounters:
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5), prefix)

    def increment(self, key: str, ttl: timedelta, now: datetime) -> int:
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(self.prefix + key)
        pipe.expire(self.prefix + key, max(1, int(ttl.total_seconds())))
        count, _ = pipe.execute()
        return int(count)

    def counts(self, keys: Sequence[str], now: datetime) -> list[int]:
        if not keys:
            return []
        return [int(v) if v is not None else 0 for v in self.client.mget([self.prefix + k for k in keys])]

    def locks(self, keys: Sequence[str], now: datetime) -> list[LockRecord | None]:
        if not keys:
            return []
        result: list[LockRecord | None] = []
        for raw in self.client.mget([self.prefix + k for k in keys]):
            record = self._decode(raw)
            result.append(record if record is not None and record.until > now else None)
        return result

    @staticmethod
    def _decode(raw: bytes | str | None) -> LockRecord | None:
        if raw is None:
            return None
        data = json.loads(raw)
        return LockRecord(datetime.fromtimestamp(int(data["until_ms"]) / 1000, UTC), str(data["reason"]))

    def lock(self, key: str, record: LockRecord, now: datetime) -> LockRecord:
        until_ms = int(record.until.timestamp() * 1000)
        value = json.dumps({"until_ms": until_ms, "reason": record.reason})
        ttl_ms = max(1000, until_ms - int(now.timestamp() * 1000) + 60_000)
        stored = self._lock_script(keys=[self.prefix + key], args=[value, until_ms, ttl_ms])
        decoded = self._decode(stored)
        assert decoded is not None
        return decoded

    def delete(self, keys: Sequence[str]) -> int:
        return int(self.client.delete(*[self.prefix + k for k in keys])) if keys else 0
