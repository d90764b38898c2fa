"""Reading the live database: procedure records for the live statistics, issuance history for the forecast.

Only this module knows the other packages' tables (``procedures``, ``procedure_steps``, ``registry_cards``,
``registry_residents``, ``registry_municipalities``); the statistics and the forecast work on plain records.

Failure counts of a procedure, the largest of: ``data["face_failures"]`` / ``data["code_failures"]``; attempts
recorded by the engine (``data["face_attempts"]`` / ``data["code_attempts"]``) minus the one that succeeded when the
matching proof (``face_liveness``/``face_enrolled`` / ``security_code``) is among the procedure's proofs; the journal
rows in ``procedure_steps`` whose name mentions ``face`` / ``code`` with phase ``failed``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import case, func, select

from jpki_remote.analytics.history import IssuanceHistory, IssuanceRecord, normalize_municipality_code
from jpki_remote.analytics.live import ProcedureRecord, to_jst
from jpki_remote.analytics.months import month_index
from jpki_remote.store import Database

#: procedures.status → the outcome names of the statistics
OUTCOMES = {
    "completed": "completed",
    "failed": "failed",
    "rolled_back": "rolled_back",
    "cancelled": "cancelled",
    "active": "in_progress",
}


class SourceUnavailable(ValueError):
    """The live database lacks the tables this read needs."""


def _code(raw: str | None) -> str:
    if not raw:
        return ""
    try:
        return normalize_municipality_code(raw)
    except ValueError:
        return raw


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


FACE_PROOFS = frozenset({"face_liveness", "face_enrolled"})
CODE_PROOFS = frozenset({"security_code"})


def _failures(data: dict[str, object], proofs: object, what: str, passed_by: frozenset[str], journal: int) -> int:
    """The largest failure count the engine's records support (see the module docstring)."""
    attempts = _int(data.get(f"{what}_attempts"))
    succeeded = isinstance(proofs, list) and any(p in passed_by for p in proofs)
    return max(_int(data.get(f"{what}_failures")), attempts - 1 if succeeded and attempts else attempts, journal)


def procedure_records(
    database: Database, *, since: datetime | None = None, municipality_code: str | None = None
) -> Iterator[ProcedureRecord]:
    """Every procedure in the live database (optionally since a time / of one municipality) as a record."""
    try:
        from jpki_remote.procedures.models import Procedure, ProcedureStep
        from jpki_remote.registry.models import Card, Resident
    except ImportError as exc:  # pragma: no cover - the packages ship together
        raise SourceUnavailable(f"the procedures or registry tables are not available: {exc}") from exc

    failed = ProcedureStep.phase == "failed"
    steps = (
        select(
            ProcedureStep.procedure_id.label("procedure_id"),
            func.sum(case((failed & ProcedureStep.name.like("%face%"), 1), else_=0)).label("face"),
            func.sum(case((failed & ProcedureStep.name.like("%code%"), 1), else_=0)).label("code"),
        )
        .group_by(ProcedureStep.procedure_id)
        .subquery()
    )
    query = (
        select(
            Procedure.kind,
            Procedure.channel,
            Procedure.status,
            Procedure.error_code,
            Procedure.data,
            Procedure.proofs,
            Procedure.created_at,
            Procedure.finished_at,
            Card.municipality_code,
            Resident.municipality_code,
            steps.c.face,
            steps.c.code,
        )
        .outerjoin(Card, Card.card_id == Procedure.card_id)
        .outerjoin(Resident, Resident.id == Procedure.resident_id)
        .outerjoin(steps, steps.c.procedure_id == Procedure.id)
        .order_by(Procedure.created_at)
    )
    if since is not None:
        query = query.where(Procedure.created_at >= since)
    wanted = normalize_municipality_code(municipality_code) if municipality_code else None
    with database.session() as session:
        for (
            kind,
            channel,
            status,
            error_code,
            data,
            proofs,
            created,
            finished,
            card_code,
            resident_code,
            face,
            code,
        ) in session.execute(query).yield_per(1000):
            municipality = _code(card_code or resident_code or (data or {}).get("municipality_code"))
            if wanted is not None and municipality != wanted:
                continue
            status_value = getattr(status, "value", status)
            outcome = OUTCOMES.get(status_value, str(status_value))
            if outcome == "failed" and error_code and "counter" in error_code:
                outcome = "referred_to_counter"
            data = data if isinstance(data, dict) else {}
            yield ProcedureRecord(
                kind=kind,
                channel=channel,
                outcome=outcome,
                municipality_code=municipality,
                started_at=_aware(created),  # type: ignore[arg-type]
                finished_at=_aware(finished),
                face_failures=_failures(data, proofs, "face", FACE_PROOFS, int(face or 0)),
                code_failures=_failures(data, proofs, "code", CODE_PROOFS, int(code or 0)),
            )


def municipality_names(database: Database) -> dict[str, str]:
    from jpki_remote.registry.models import Municipality

    with database.session() as session:
        return {_code(code): name for code, name in session.execute(select(Municipality.code, Municipality.name))}


def history_from_database(url: str | None = None, database: Database | None = None) -> IssuanceHistory:
    """Cards in use (active or remote-locked), counted by the month they were issued and their municipality.

    Cards already replaced or withdrawn are left out: their successors are counted instead, so the forecast follows
    the cards that will actually fall due."""
    from jpki_remote.registry.models import Card, CardState

    own = database is None
    if database is None:
        from jpki_remote.config import load_settings

        database = Database(url or load_settings().effective_database_url)
    try:
        names = municipality_names(database)
        counts: dict[tuple[str, int], int] = defaultdict(int)
        with database.session() as session:
            rows = session.execute(
                select(Card.municipality_code, Card.issued_at).where(
                    Card.state.in_([CardState.ACTIVE, CardState.REMOTE_LOCKED])
                )
            )
            for code, issued in rows:
                moment = to_jst(issued)  # the month of issuance in Japan
                counts[(_code(code), month_index(moment.year, moment.month))] += 1
    finally:
        if own:
            database.dispose()
    if not counts:
        raise SourceUnavailable("the database has no cards in use; nothing to forecast")
    records = tuple(
        IssuanceRecord(code, month, month, n, names.get(code, "")) for (code, month), n in sorted(counts.items())
    )
    return IssuanceHistory(records, source="database")
