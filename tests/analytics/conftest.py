"""Fixtures of the analytics tests: a live database with a few municipalities, cards and procedures."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from jpki_remote.store import Database


def seed_live_database(database: Database) -> None:
    from jpki_remote.procedures.models import Procedure, ProcedureStatus, ProcedureStep
    from jpki_remote.registry.models import Card, CardState, Municipality, Resident, ResidentStatus

    now = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
    with database.session() as session:
        session.add_all(
            [
                Municipality(code="131032", name="港区", prefecture="東京都", created_at=now),
                Municipality(code="232114", name="豊田市", prefecture="愛知県", created_at=now),
            ]
        )
        for rid, code in (("r1", "131032"), ("r2", "232114")):
            session.add(
                Resident(
                    id=rid,
                    municipality_code=code,
                    family_name="試験",
                    given_name="太郎",
                    address="東京都港区芝公園1-5-25",
                    birth_date=date(1980, 5, 10),
                    sex=1,
                    status=ResidentStatus.ACTIVE,
                    created_at=now,
                    updated_at=now,
                )
            )
        session.flush()
        cards = [
            ("c1", "r1", "131032", datetime(2020, 6, 30, 16, 0, tzinfo=UTC), CardState.ACTIVE),  # 2020-07-01 JST
            ("c2", "r2", "232114", datetime(2020, 5, 10, 3, 0, tzinfo=UTC), CardState.ACTIVE),
            ("c3", "r2", "232114", datetime(2015, 5, 10, 3, 0, tzinfo=UTC), CardState.REVOKED),  # replaced
        ]
        for card_id, rid, code, issued, state in cards:
            session.add(
                Card(
                    card_id=card_id,
                    resident_id=rid,
                    municipality_code=code,
                    card_expiry=date(2030, 5, 10),
                    state=state,
                    issued_at=issued,
                    diversification_data=secrets.token_bytes(16),
                )
            )
        session.flush()
        rows = [
            ("p1", "renewal", "kiosk", "c1", ProcedureStatus.COMPLETED, None, {"face_attempts": 2}),
            ("p2", "pin_reset", "online", "c2", ProcedureStatus.FAILED, "face_limit_counter", {}),
            ("p3", "pin_change", "counter", "c2", ProcedureStatus.COMPLETED, None, {}),
            ("p4", "renewal", "online", "c1", ProcedureStatus.ACTIVE, None, {}),
        ]
        for index, (pid, kind, channel, card, status, error, data) in enumerate(rows):
            start = now + timedelta(hours=index * 7)
            session.add(
                Procedure(
                    id=pid,
                    kind=kind,
                    target="certificates",
                    channel=channel,
                    card_id=card,
                    resident_id=None,
                    terminal_id=None,
                    actor=f"holder:{card}",
                    status=status,
                    state="done",
                    proofs=["card_auth_key", "face_liveness"] if pid == "p1" else [],
                    data=data,
                    active_card=card if status == ProcedureStatus.ACTIVE else None,
                    error_code=error,
                    created_at=start,
                    updated_at=start,
                    expires_at=start + timedelta(hours=1),
                    finished_at=None if status == ProcedureStatus.ACTIVE else start + timedelta(minutes=9),
                )
            )
        session.flush()
        for seq, (name, phase) in enumerate(
            [("face_match", "failed"), ("face_match", "failed"), ("security_code", "failed"), ("face_match", "done")]
        ):
            session.add(ProcedureStep(procedure_id="p2", seq=seq, name=name, phase=phase, detail={}, at=now))


@pytest.fixture
def seed_live() -> Callable[[Database], None]:
    """Fill a migrated database with two municipalities, three cards (one withdrawn) and four procedures."""
    return seed_live_database
