"""Schema-driven fuzzing of the JSON API with schemathesis, in process (ASGI), bounded and deterministic.

:func:`fuzz_api` walks every operation of the app's own OpenAPI document, generates ``max_examples`` positive and
``max_examples`` negative requests per operation (hypothesis, derandomized), sends them with the credentials the
operation needs (agent, counter terminal or admin) — and, for half of the examples of a ``{procedure_id}`` route,
the id of a live procedure, so requests reach the engine rather than stopping at "not found". It never raises on a
finding: it returns a :class:`FuzzReport` the tests assert on and print.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

# what an error body must never show: stack traces, source paths, library internals, exception class names
LEAK = re.compile(
    r"Traceback|File \"|site-packages|/work/|/home/|/tmp/|/usr/lib|\.py\b|sqlalchemy|psycopg|sqlite3|"
    r"\b[A-Z][A-Za-z]+(?:Error|Exception)\b|jpki_remote\.",
)


@dataclass
class FuzzReport:
    operations: int = 0
    examples: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[tuple[str, str]] = field(default_factory=list)  # (METHOD /template, detail)
    leaks: list[str] = field(default_factory=list)
    not_json: list[str] = field(default_factory=list)
    conformance: Counter[str] = field(default_factory=Counter)
    unsatisfiable: list[str] = field(default_factory=list)
    seconds_by_operation: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        statuses = ", ".join(f"{k}:{v}" for k, v in sorted(self.statuses.items()))
        conformance = ", ".join(f"{k}:{v}" for k, v in sorted(self.conformance.items())) or "none"
        return (
            f"fuzz: {self.operations} operations, {self.examples} requests in {self.seconds:.1f} s; "
            f"statuses {statuses}; 5xx {len(self.server_errors)}; leaks {len(self.leaks)}; "
            f"non-JSON errors {len(self.not_json)}; schema conformance failures {conformance}"
        )


def _conformance_checks() -> list[Callable[..., Any]]:
    from schemathesis.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [status_code_conformance, content_type_conformance, response_schema_conformance]


def _failure_names(error: BaseException) -> list[str]:
    inner = getattr(error, "exceptions", None)
    if inner:
        return [name for e in inner for name in _failure_names(e)]
    return [type(error).__name__ + ":" + (getattr(error, "title", "") or str(error).splitlines()[0][:60])]


def _deliberate_unavailable(response: Any) -> bool:
    """A 503 with a stable error code is the app saying a dependency is not configured, not a crash."""
    if response.status_code != 503:
        return False
    try:
        return response.json()["error"]["code"] != "internal"
    except (ValueError, KeyError, TypeError):
        return False


def _send(client: Any, case: Any, headers: dict[str, str]) -> Any:
    """Send through our own TestClient (``raise_server_exceptions=False``: a crash is a 500 we count, not a raise)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    request: dict[str, Any] = {k: kwargs[k] for k in ("method", "url", "headers", "params", "json") if k in kwargs}
    for key in ("data", "content"):
        if key in kwargs:
            value = kwargs[key]
            if isinstance(value, str | bytes):
                request["content"] = value
            else:
                request["data"] = value
    if "files" in kwargs:
        request["files"] = kwargs["files"]
    return client.request(**request)


def fuzz_api(
    client: Any,
    headers_for: Callable[[str, str], dict[str, str]],
    live_procedure: Callable[[], str],
    *,
    max_examples: int = 12,
    examples_for: Callable[[str, str], int | None] | None = None,
) -> FuzzReport:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", client.app)
    report = FuzzReport()
    start = time.perf_counter()
    checks = _conformance_checks()
    for result in schema.get_all_operations():
        operation = result.ok()
        report.operations += 1
        count = (examples_for(operation.method.upper(), operation.path) if examples_for else None) or max_examples
        began = time.perf_counter()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                strategy = operation.as_strategy(generation_mode=mode)
            except Exception:  # noqa: S112 - an operation without negative space (no parameters) is skipped
                continue
            _run_operation(client, operation, strategy, headers_for, live_procedure, checks, report, count)
        report.seconds_by_operation[f"{operation.method.upper()} {operation.path}"] = time.perf_counter() - began
    report.seconds = time.perf_counter() - start
    return report


def _run_operation(
    client: Any,
    operation: Any,
    strategy: Any,
    headers_for: Callable[[str, str], dict[str, str]],
    live_procedure: Callable[[], str],
    checks: list[Callable[..., Any]],
    report: FuzzReport,
    max_examples: int,
) -> None:
    method, path = operation.method.upper(), operation.path

    @settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=strategy, use_live=st.booleans())
    def run(case: Any, use_live: bool) -> None:
        if use_live and case.path_parameters and "procedure_id" in case.path_parameters:
            case.path_parameters["procedure_id"] = live_procedure()
        response = _send(client, case, headers_for(method, path))
        report.examples += 1
        report.statuses[response.status_code] += 1
        where = f"{method} {case.formatted_path} -> {response.status_code}"
        text = response.text
        if response.status_code >= 500 and not _deliberate_unavailable(response):
            report.server_errors.append((f"{method} {path}", f"{where}: {text[:200]}"))
        if response.status_code >= 400:
            if LEAK.search(text):
                report.leaks.append(f"{where}: {text[:200]}")
            try:
                body = json.loads(text)
                if not (isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("code")):
                    report.not_json.append(f"{where}: {text[:120]}")
            except ValueError:
                report.not_json.append(f"{where}: {text[:120]}")
        try:
            case.validate_response(response, checks=checks)
        except (Exception, BaseExceptionGroup) as error:  # conformance: counted here, asserted by a finding test
            for name in _failure_names(error):
                report.conformance[f"{method} {path}: {name}"] += 1

    try:
        run()
    except Unsatisfiable:  # e.g. negative data for an operation that takes no input at all
        report.unsatisfiable.append(f"{method} {path}")
