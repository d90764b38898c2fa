"""`jpki-remote serve` refuses the development outbox unless it is explicitly allowed (finding S-14)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jpki_remote.cli import main
from jpki_remote.config import load_settings
from jpki_remote.web.commands import dev_outbox_refusal


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("JPKI_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("JPKI_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


@pytest.mark.parametrize("delivery", [None, "outbox", "smtp,outbox", " OUTBOX "])
def test_serve_refuses_the_outbox_by_default_before_touching_anything(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], delivery: str | None
) -> None:
    if delivery is not None:
        clean_env.setenv("JPKI_DELIVERY", delivery)
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "JPKI_DELIVERY" in err and "--allow-dev-outbox" in err and "JPKI_ALLOW_DEV_OUTBOX=1" in err
    assert not (tmp_path / "data").exists()  # no database, no admin token: it stopped first


def test_the_flag_or_the_setting_allows_the_outbox_and_real_delivery_needs_neither(
    clean_env: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    assert settings.delivery == "outbox" and not settings.allow_dev_outbox
    assert dev_outbox_refusal(settings, allow_flag=False)
    assert dev_outbox_refusal(settings, allow_flag=True) is None
    clean_env.setenv("JPKI_ALLOW_DEV_OUTBOX", "1")
    assert load_settings().allow_dev_outbox
    assert dev_outbox_refusal(load_settings(), allow_flag=False) is None
    clean_env.delenv("JPKI_ALLOW_DEV_OUTBOX")
    for delivery in ("smtp", "sms", "smtp,sms"):
        clean_env.setenv("JPKI_DELIVERY", delivery)
        assert dev_outbox_refusal(load_settings(), allow_flag=False) is None
