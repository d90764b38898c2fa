"""The analytics part of the admin dashboard: JSON endpoints and a self-contained HTML fragment with a little JS.

The web package mounts it::

    from jpki_remote.analytics.web import create_router
    app.include_router(create_router(lambda: database, dependencies=[Depends(require_admin)]))

and puts :func:`dashboard_fragment` (or ``GET /api/analytics/dashboard``) into the admin page. The fragment loads
``/api/analytics/dashboard.js`` and ``dashboard.css`` from the same router — no CDN, no inline script, so a strict
Content-Security-Policy (``script-src 'self'``) works.

Endpoints (all GET, JSON unless noted):

* ``/api/analytics/forecast`` — certificates and cards falling due per month and per fiscal year;
* ``/api/analytics/load?share=0.7`` — counter load with that share of renewals/resets moved to kiosk/online, against
  nothing moved: per month visits, staff hours, utilisation, mean wait (``null`` = overloaded); summary and what-if;
* ``/api/analytics/surge?share=0.7`` — a 10× PIN-reset surge day by day, counter only and with the share moved;
* ``/api/analytics/live`` — live statistics of the procedures run (``?municipality=``, ``?since=``, ``?minutes=``);
* ``/api/analytics/dashboard`` (HTML fragment), ``dashboard.js``, ``dashboard.css``.

``source`` selects the issuance history: ``database`` (cards in use in the live database), ``minato`` (the seed's
example) or ``auto`` (the database when it has cards in use, else the Minato example).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.params import Depends
from fastapi.responses import HTMLResponse, Response

from jpki_remote.analytics.forecast import Forecast, ForecastParameters, forecast
from jpki_remote.analytics.history import IssuanceHistory
from jpki_remote.analytics.live import live_statistics
from jpki_remote.analytics.load import CounterSetup, LoadModel, SurgeScenario, by_fiscal_year, simulate_surge
from jpki_remote.analytics.months import month_index, month_label
from jpki_remote.analytics.plan import load_example_history
from jpki_remote.store import Database

STATIC = resources.files("jpki_remote.analytics") / "static"
DEFAULT_PREFIX = "/api/analytics"
Source = Literal["auto", "database", "minato"]
DatabaseProvider = Callable[[], Database | None]


class JavaScriptResponse(Response):
    """The dashboard's script: declared as ``text/javascript`` in the OpenAPI document, answered with it."""

    media_type = "text/javascript"


class StyleSheetResponse(Response):
    """The dashboard's style sheet: ``text/css`` in the OpenAPI document and in the answer."""

    media_type = "text/css"


def _clean(value: Any) -> Any:
    """JSON-safe: infinities and NaN become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def static_text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def dashboard_fragment(prefix: str = DEFAULT_PREFIX) -> str:
    """The admin dashboard's analytics section (HTML), reading from the router mounted at ``prefix``."""
    return static_text("dashboard.html").replace("{{API}}", prefix.rstrip("/"))


@lru_cache(maxsize=4)
def _example_forecast(start: int, months: int) -> Forecast:
    return forecast(load_example_history("minato"), ForecastParameters(start=start, months=months))


def create_router(
    database: DatabaseProvider | Database | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    counter: CounterSetup | None = None,
    dependencies: Sequence[Depends] | None = None,
    today: Callable[[], datetime] = datetime.now,
) -> APIRouter:
    """The analytics router. ``database`` is the live database (or a callable returning it, or None)."""
    provider: DatabaseProvider = database if callable(database) else (lambda: database)  # type: ignore[assignment,return-value]
    setup = counter or CounterSetup()
    router = APIRouter(prefix=prefix, tags=["analytics"], dependencies=list(dependencies or []))

    def history_for(source: Source, municipality: str | None) -> tuple[str, IssuanceHistory]:
        from jpki_remote.analytics.sources import SourceUnavailable, history_from_database

        db = provider()
        if source in ("auto", "database") and db is not None:
            try:
                history = history_from_database(database=db)
                return "database", history.for_municipality(municipality) if municipality else history
            except SourceUnavailable:
                if source == "database":
                    raise HTTPException(404, "the live database has no cards in use") from None
            except ValueError as exc:
                raise HTTPException(404, str(exc)) from None
        elif source == "database":
            raise HTTPException(503, "no live database is configured")
        return "minato", load_example_history("minato")

    def forecast_for(source: Source, municipality: str | None, years: int) -> tuple[str, Forecast]:
        now = today()
        start = month_index(now.year, now.month)
        used, history = history_for(source, municipality)
        if used == "minato" and not municipality:
            return used, _example_forecast(month_index(2022, 6), years * 12)
        return used, forecast(history, ForecastParameters(start=start, months=years * 12))

    def model_for(windows: int | None, minutes: float | None) -> LoadModel:
        try:
            chosen = CounterSetup(
                windows=windows or setup.windows,
                opening_minutes=setup.opening_minutes,
                minutes_per_visit=minutes or setup.minutes_per_visit,
                minutes_by_procedure=setup.minutes_by_procedure,
                target_mean_wait_minutes=setup.target_mean_wait_minutes,
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return LoadModel(chosen)

    @router.get("/forecast")
    def get_forecast(
        source: Source = "auto",
        municipality: str | None = Query(None, max_length=6),
        years: int = Query(10, ge=1, le=30),
    ) -> dict[str, Any]:
        used, fc = forecast_for(source, municipality, years)
        return _clean({"source": used, **fc.to_dict()})

    @router.get("/load")
    def get_load(
        share: float = Query(0.7, ge=0.0, le=1.0, description="share of renewals and resets moved to kiosk/online"),
        source: Source = "auto",
        municipality: str | None = Query(None, max_length=6),
        years: int = Query(10, ge=1, le=30),
        windows: int | None = Query(None, ge=1, le=500),
        minutes: float | None = Query(None, gt=0, le=600),
    ) -> dict[str, Any]:
        used, fc = forecast_for(source, municipality, years)
        model = model_for(windows, minutes)
        base, moved = model.monthly(fc, 0.0), model.monthly(fc, share)
        summary = model.summary(fc, share, moved)
        return _clean(
            {
                "source": used,
                "share": share,
                "windows": model.setup.windows,
                "minutes_per_visit": model.setup.minutes_per_visit,
                "target_mean_wait_minutes": model.setup.target_mean_wait_minutes,
                "summary": {**summary.__dict__, "hours_saved_per_year": summary.hours_saved / (len(base) / 12)},
                "months": [
                    {
                        "month": month_label(b.month),
                        "counter_visits": b.total_counter_visits,
                        "counter_visits_moved": m.total_counter_visits,
                        "staff_hours": b.staff_hours,
                        "staff_hours_moved": m.staff_hours,
                        "utilisation": b.utilisation,
                        "utilisation_moved": m.utilisation,
                        "mean_wait_minutes": b.mean_wait_minutes,
                        "mean_wait_minutes_moved": m.mean_wait_minutes,
                        "windows_needed_moved": m.windows_needed,
                    }
                    for b, m in zip(base, moved, strict=True)
                ],
                "fiscal_years": by_fiscal_year(moved),
            }
        )

    @router.get("/surge")
    def get_surge(
        share: float = Query(0.7, ge=0.0, le=1.0),
        factor: float = Query(10.0, ge=1.0, le=100.0),
        days: int = Query(10, ge=1, le=60),
        windows: int = Query(3, ge=1, le=500),
        resets_per_day: float = Query(25.0, ge=0.0, le=10_000.0),
        minutes: float = Query(30.0, gt=0, le=600),
    ) -> dict[str, Any]:
        scenario = SurgeScenario({"pin_reset": resets_per_day}, factor=factor, surge_days=days)
        counter_setup = CounterSetup(windows=windows, opening_minutes=setup.opening_minutes, minutes_per_visit=minutes)
        results = [simulate_surge(scenario, counter_setup, s) for s in sorted({0.0, share})]
        return _clean({"results": [r.to_dict() for r in results]})

    @router.get("/live")
    def get_live(
        municipality: str | None = Query(None, max_length=6),
        since: datetime | None = None,
        minutes: float = Query(60.0, gt=0, le=600, description="staff minutes per counter visit"),
    ) -> dict[str, Any]:
        from jpki_remote.analytics.sources import municipality_names, procedure_records

        db = provider()
        if db is None:
            raise HTTPException(503, "no live database is configured")
        try:
            records = procedure_records(db, since=since, municipality_code=municipality)
            stats = live_statistics(records, minutes_per_visit=minutes, municipality_names=municipality_names(db))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return _clean(stats.to_dict())

    @router.get("/dashboard", response_class=HTMLResponse)
    def get_dashboard() -> HTMLResponse:
        return HTMLResponse(dashboard_fragment(prefix))

    @router.get(
        "/dashboard.js",
        response_class=JavaScriptResponse,
        responses={200: {"description": "the dashboard's script (UTF-8)"}},
    )
    def get_script() -> JavaScriptResponse:
        return JavaScriptResponse(static_text("dashboard.js"))

    @router.get(
        "/dashboard.css",
        response_class=StyleSheetResponse,
        responses={200: {"description": "the dashboard's style sheet (UTF-8)"}},
    )
    def get_style() -> StyleSheetResponse:
        return StyleSheetResponse(static_text("dashboard.css"))

    return router
