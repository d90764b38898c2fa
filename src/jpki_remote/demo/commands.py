"""`jpki-remote demo` sub-command."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add the demo sub-command."""
