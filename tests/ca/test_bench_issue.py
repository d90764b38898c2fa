"""`jpki-remote bench issue` runs end to end and prints its figures (no timing is asserted)."""

from __future__ import annotations

import pytest

from jpki_remote.cli import main


def test_bench_issue_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "issue", "--pairs", "3", "--processes", "1", "--threads", "2", "--lint-workers", "0"]
    assert main([*args, "--keystore", "file"]) == 0
    out = capsys.readouterr().out
    assert "1 issuing process × 2 threads, lint in the issuing thread" in out
    assert "reference: pyca build+sign only" in out
    assert "full path, encrypted key file" in out
    assert "CPU ms/pair" in out and "vs reference" in out


def test_bench_issue_with_issuing_processes(capsys: pytest.CaptureFixture[str]) -> None:
    """The default layout: one issuing process per CPU over one database and key store."""
    assert main(["bench", "issue", "--pairs", "5", "--processes", "2", "--keystore", "file"]) == 0
    out = capsys.readouterr().out
    assert "2 issuing processes × 1 thread" in out
    row = next(line for line in out.splitlines() if line.startswith("full path, encrypted key file "))
    assert row.split()[5] == "5"  # every pair of both processes was issued and counted


@pytest.mark.hsm
@pytest.mark.slow
def test_bench_issue_with_softhsm_and_lint_workers(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "issue", "--pairs", "4", "--processes", "2", "--threads", "2", "--lint-workers", "1"]
    assert main([*args, "--keystore", "both"]) == 0
    out = capsys.readouterr().out
    assert "full path, SoftHSM2 (PKCS#11)" in out and "full path, encrypted key file" in out
