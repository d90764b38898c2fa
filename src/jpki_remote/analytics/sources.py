"""Issuance history from the live database (the registry's cards), for ``jpki-remote plan --database``."""

from __future__ import annotations

from jpki_remote.analytics.history import IssuanceHistory


class SourceUnavailable(ValueError):
    """The live database has no table of issued cards (yet)."""


def history_from_database(url: str | None = None) -> IssuanceHistory:
    """Cards issued per month and municipality, counted in the registry's card table."""
    raise SourceUnavailable("the registry has no table of issued cards yet; use --history CSV or --example")
