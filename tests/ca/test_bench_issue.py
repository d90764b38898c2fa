"""`jpki-remote bench issue` runs end to end and prints its figures (no timing is asserted)."""

from __future__ import annotations

import pytest

from jpki_remote.cli import main


def test_bench_issue_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "issue", "--pairs", "3", "--threads", "2", "--lint-workers", "0", "--keystore", "file"]) == 0
    out = capsys.readouterr().out
    assert "reference: pyca build+sign only" in out
    assert "full path, encrypted key file" in out
    assert "CPU ms/pair" in out and "vs reference" in out


@pytest.mark.hsm
@pytest.mark.slow
def test_bench_issue_with_softhsm_and_lint_workers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "issue", "--pairs", "4", "--threads", "2", "--lint-workers", "2", "--keystore", "both"]) == 0
    out = capsys.readouterr().out
    assert "full path, SoftHSM2 (PKCS#11)" in out and "full path, encrypted key file" in out
