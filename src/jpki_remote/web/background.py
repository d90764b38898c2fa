"""The background work of one ``jpki-remote serve`` process: periodic tasks on daemon threads.

* ``procedure-recovery`` — finish or roll back procedures idle past their deadline (``Engine.recover``), every minute;
* ``notice-delivery`` — send the holder notices that are due (``proofing.notify.deliver_pending``: the retries of
  notices that could not be sent at once), every ``JPKI_NOTIFICATION_POLL_SECONDS``;
* ``audit-tree-head`` — sign a tree head over the audit log when events were appended since the last head, every
  ``JPKI_AUDIT_STH_INTERVAL_SECONDS`` (so a quiet log still gets its last events covered).

Every task is safe with several servers running it at once (claims and row locks in the database), so any number of
workers may run behind a load balancer. A task that raises is logged and tried again at its next tick; nothing here
ever stops the web server. Deployments that prefer cron run ``jpki-remote notify deliver-pending`` instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jpki_remote.config import Settings
from jpki_remote.store import Database, database_unavailable

log = logging.getLogger(__name__)


@dataclass
class PeriodicTask:
    name: str
    interval_seconds: float
    run: Callable[[], Any]
    runs: int = 0
    failures: int = 0
    _thread: threading.Thread | None = field(default=None, repr=False)

    def tick(self) -> Any:
        """One run, errors logged and counted (never raised)."""
        try:
            result = self.run()
        except Exception as exc:
            self.failures += 1
            if database_unavailable(exc):  # an outage, not a bug: one line, no stack trace
                log.warning(
                    "background task %s: database unavailable; retrying in %.0f s", self.name, self.interval_seconds
                )
            else:
                log.exception("background task %s failed; retrying in %.0f s", self.name, self.interval_seconds)
            return None
        self.runs += 1
        return result


class Background:
    """The periodic tasks of a server process: ``start()`` once, ``stop()`` at shutdown."""

    def __init__(self, tasks: list[PeriodicTask]) -> None:
        self.tasks = tasks
        self._stop = threading.Event()

    def start(self) -> None:
        for task in self.tasks:
            thread = threading.Thread(target=self._loop, args=(task,), name=task.name, daemon=True)
            task._thread = thread
            thread.start()

    def _loop(self, task: PeriodicTask) -> None:
        while not self._stop.wait(max(1.0, task.interval_seconds)):
            task.tick()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for task in self.tasks:
            if task._thread is not None:
                task._thread.join(timeout)

    def run_once(self) -> dict[str, Any]:
        """Every task once, now (start-up catch-up, tests)."""
        return {task.name: task.tick() for task in self.tasks}


def deliver_notices(db: Database, settings: Settings) -> Any:
    from jpki_remote.proofing.notify import deliver_pending

    report = deliver_pending(db=db, settings=settings)
    if report.sent or report.retry_later or report.failed:
        log.info("notices: %d sent, %d to retry, %d failed", report.sent, report.retry_later, report.failed)
    return report


def sign_tree_head_if_new(audit_log: Any) -> Any:
    """Sign a head when the log grew since the latest head; ``None`` when there was nothing new."""
    latest = audit_log.latest_head()
    if latest is not None and latest.tree_size >= audit_log.size():
        return None
    return audit_log.sign_head()


def server_tasks(
    db: Database, settings: Settings, get_engine: Callable[[], Any], status_service: Any = None
) -> Background:
    """The background tasks ``serve`` runs for the application over ``db`` (with the CRL publisher / OCSP refresher
    when the app mounted the status service)."""
    from jpki_remote.audit.log import AuditLog
    from jpki_remote.audit.signing import signer_from_settings

    audit_log = AuditLog(db, signer_from_settings(settings), sth_interval_seconds=settings.audit_sth_interval_seconds)
    status_tasks = (
        [PeriodicTask("crl-ocsp-publisher", settings.status_poll_seconds, status_service.run_background_once)]
        if status_service is not None
        else []
    )
    return Background(
        [
            *status_tasks,
            PeriodicTask("procedure-recovery", 60, lambda: get_engine().recover()),
            PeriodicTask("notice-delivery", settings.notification_poll_seconds, lambda: deliver_notices(db, settings)),
            PeriodicTask(
                "audit-tree-head", settings.audit_sth_interval_seconds, lambda: sign_tree_head_if_new(audit_log)
            ),
        ]
    )
