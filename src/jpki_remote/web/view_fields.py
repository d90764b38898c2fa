"""Fields every procedure view answered by the API carries, added around the :class:`Engine` façade:

* ``completed_at`` — when the procedure completed (ISO 8601, UTC), else null (the receipt on the last screen);
  ``finished_at`` — when it ended in any way (completed, failed, rolled back, cancelled), else null;
* ``code_tries_left`` — wrong security-code entries still allowed for this procedure (the budget counts across
  resends), on every view of a procedure whose proofs include a security code; null when it needs none.

:func:`with_view_fields` wraps an engine: its view-returning methods answer the view with these fields, everything
else (``recover``, ``policy``, ``ports``, …) is the engine's own.
"""

import functools
from typing import Any

from jpki_remote.procedures.models import Procedure, ProcedureStatus

VIEW_METHODS = frozenset(
    {
        "start",
        "start_issuance",
        "view",
        "exchange",
        "cancel",
        "request_code",
        "verify_code",
        "submit_face",
        "record_staff_check",
    }
)
SECURITY_CODE = "security_code"


def _iso(moment: Any) -> str | None:
    if moment is None:
        return None
    from datetime import UTC

    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def add_view_fields(engine: Any, view: Any) -> Any:
    """``view`` with ``completed_at``, ``finished_at`` and ``code_tries_left`` (anything not a view: unchanged)."""
    if not isinstance(view, dict) or not isinstance(view.get("id"), str) or "status" not in view:
        return view
    with engine.db.session() as session:
        row = session.get(Procedure, view["id"])
        finished, kind = (row.finished_at, row.kind) if row is not None else (None, view.get("kind"))
        completed = row is not None and row.status is ProcedureStatus.COMPLETED
    view["finished_at"] = _iso(finished)
    view["completed_at"] = _iso(finished) if completed else None
    if view.get("code_tries_left") is None:
        missing = [proof for group in view.get("proofs_missing") or [] for proof in group]
        needs_code = SECURITY_CODE in missing or SECURITY_CODE in (view.get("proofs_done") or [])
        codes = getattr(engine.ports, "codes", None)
        view["code_tries_left"] = codes.tries_left(view["id"], str(kind)) if needs_code and codes else None
    return view


class ViewFields:
    """The engine with :func:`add_view_fields` applied to the answers of its view-returning methods."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._engine, name)
        if name not in VIEW_METHODS or not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            return add_view_fields(self._engine, attribute(*args, **kwargs))

        return call

    @property
    def engine(self) -> Any:
        return self._engine


def with_view_fields(engine: Any) -> Any:
    return engine if isinstance(engine, ViewFields) else ViewFields(engine)
