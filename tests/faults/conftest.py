"""Fixtures of the process-level fault tests (see fault_world.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_world import Template, build_template


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Template:
    """One CA and card set up for the whole session; each scenario runs on a copy."""
    return build_template(tmp_path_factory.mktemp("fault-template") / "t", faces_dir)
