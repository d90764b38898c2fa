from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from jpki_remote.config import Settings, load_settings
from jpki_remote.store import Database


def test_schema_is_created_and_usable(database: Database) -> None:
    with database.session() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1
    assert "alembic_version" in inspect(database.engine).get_table_names()


def test_session_rolls_back_on_error(database: Database) -> None:
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (x INTEGER)"))
    with pytest.raises(RuntimeError), database.session() as session:
        session.execute(text("INSERT INTO probe (x) VALUES (1)"))
        raise RuntimeError("boom")
    with database.session() as session:
        assert session.execute(text("SELECT COUNT(*) FROM probe")).scalar_one() == 0


def test_settings_from_environment(tmp_path) -> None:
    settings = load_settings({"JPKI_DATA_DIR": str(tmp_path), "JPKI_CRL_SHARDS": "4", "HOME": "/x"})
    assert settings.data_dir == tmp_path
    assert settings.crl_shards == 4
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'jpki.db'}"
    assert Settings().keystore == "file"


def test_unknown_or_malformed_setting_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown setting JPKI_NOPE"):
        load_settings({"JPKI_NOPE": "1"})
    with pytest.raises(ValueError, match="JPKI_CRL_SHARDS"):
        load_settings({"JPKI_CRL_SHARDS": "many"})


def test_process_switches_are_not_settings_and_pass() -> None:
    """JPKI_AUDIT_STRICT and friends are read where they are used; a server started with one still starts."""
    from jpki_remote.config import PROCESS_SWITCHES

    settings = load_settings({**dict.fromkeys(PROCESS_SWITCHES, "1"), "JPKI_CRL_SHARDS": "8"})
    assert settings.crl_shards == 8
