"""A database that cannot be reached answers 503 with Retry-After and a clear message, never a 500 stack trace;
a database error that is a bug (no such table) stays a 500 ``internal``. The recovery without a restart, through
a real PostgreSQL cut, is in tests/faults/test_database_down.py."""

from __future__ import annotations

import logging
import socket
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc

from jpki_remote.config import Settings
from jpki_remote.store import Database, database_unavailable
from jpki_remote.web.app import create_app
from jpki_remote.web.errors import RETRY_AFTER_SECONDS

CHALLENGE = "/api/v1/terminals/challenge"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on return: connecting to it is refused


def _client(tmp_path: Path, db: Database) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", admin_token="admin-" + "x" * 30)
    return TestClient(create_app(settings, db=db, mount_status=False), raise_server_exceptions=False)


def test_unreachable_database_answers_503_with_retry_after(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/jpki")
    try:
        client = _client(tmp_path, db)
        with caplog.at_level(logging.WARNING, logger="jpki_remote.web.errors"):
            response = client.post(CHALLENGE, json={"terminal_id": "kiosk-1"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
        error = response.json()["error"]
        assert error["code"] == "unavailable"
        assert "しばらく時間をおいてから" in error["message_ja"] and "try again" in error["message_en"]
        assert "Traceback" not in response.text and "psycopg" not in response.text
        records = [r for r in caplog.records if r.name == "jpki_remote.web.errors"]
        assert [r.levelno for r in records] == [logging.WARNING]
        assert records[0].exc_info is None  # one line for the operator, no stack trace
        assert "database unavailable on POST /api/v1/terminals/challenge" in records[0].getMessage()
        assert client.get("/api/v1/health").status_code == 200  # the process itself is fine
    finally:
        db.dispose()


def test_database_error_that_is_a_bug_stays_a_500(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")  # no schema: "no such table" is not an outage
    try:
        response = _client(tmp_path, db).post(CHALLENGE, json={"terminal_id": "kiosk-1"})
        assert response.status_code == 500
        assert "retry-after" not in response.headers
        assert response.json()["error"]["code"] == "internal"
    finally:
        db.dispose()


def test_which_database_errors_are_outages() -> None:
    def wrapped(error: Exception, cls: type[exc.DBAPIError] = exc.OperationalError) -> exc.DBAPIError:
        return cls("SELECT 1", {}, error)

    assert database_unavailable(wrapped(sqlite3.OperationalError("database is locked")))
    assert not database_unavailable(wrapped(sqlite3.OperationalError("no such table: procedures")))
    assert not database_unavailable(wrapped(sqlite3.IntegrityError("UNIQUE failed"), exc.IntegrityError))
    assert database_unavailable(exc.TimeoutError("QueuePool limit reached"))
    lost = exc.DBAPIError("SELECT 1", {}, RuntimeError("gone"), connection_invalidated=True)
    assert database_unavailable(lost)
    assert not database_unavailable(ValueError("not a database error"))


def test_a_drivers_own_errors_from_a_raw_cursor_are_classed_too() -> None:
    """The CRL publisher streams rows through a raw DB-API cursor: psycopg's and sqlite3's own exceptions."""
    import psycopg

    assert database_unavailable(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert database_unavailable(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))
    assert database_unavailable(psycopg.InterfaceError("the connection is closed"))
    assert not database_unavailable(psycopg.errors.UndefinedTable('relation "ca_certificates" does not exist'))
    assert not database_unavailable(psycopg.errors.UniqueViolation("duplicate key"))
    assert database_unavailable(sqlite3.OperationalError("database is locked"))
    assert not database_unavailable(sqlite3.OperationalError("no such table: ca_certificates"))
