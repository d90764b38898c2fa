"""`jpki-remote` sub-commands of the terminal package."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to ``subparsers`` and its benchmarks to ``bench``."""
