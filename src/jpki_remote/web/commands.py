"""`jpki-remote serve`: the web application (JSON API, OCSP/CRL, pages) under uvicorn, with its background tasks
(:mod:`jpki_remote.web.background`); `jpki-remote notify deliver-pending`: one pass (or a loop) of the holder-notice
retry worker, for deployments that run it from cron or as its own service."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jpki_remote.config import Settings


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to ``subparsers`` and its benchmarks to ``bench``."""
    del bench
    parser = subparsers.add_parser("serve", help="run the web application (API, OCSP/CRL, pages)")
    parser.add_argument("--host", default=None, help="default: JPKI_HOST (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="default: JPKI_PORT (8080)")
    parser.add_argument(
        "--allow-dev-outbox",
        action="store_true",
        help="allow JPKI_DELIVERY=outbox (development only: security codes are kept in clear in the database); "
        "also JPKI_ALLOW_DEV_OUTBOX=1",
    )
    parser.set_defaults(handler=_serve)

    notify = subparsers.add_parser("notify", help="holder notices (お知らせ) after completed procedures")
    notify_sub = notify.add_subparsers(dest="notify_command", required=True)
    deliver = notify_sub.add_parser("deliver-pending", help="send the notices that are due (retries); cron-friendly")
    deliver.add_argument("--limit", type=int, default=100, help="at most this many notices per pass (default 100)")
    deliver.add_argument(
        "--loop", type=float, default=0.0, metavar="SECONDS", help="repeat every SECONDS until stopped (default: once)"
    )
    deliver.set_defaults(handler=_deliver_pending)


DEV_OUTBOX_REFUSED = (
    "error: JPKI_DELIVERY includes \"outbox\" (the development outbox: every security code is stored in clear in "
    "the database, so the code factor is lost). Set JPKI_DELIVERY=smtp, sms or smtp,sms for a deployment, or pass "
    "--allow-dev-outbox (or JPKI_ALLOW_DEV_OUTBOX=1) for development.\n"
    "エラー: 開発用の送信箱（outbox）では確認コードが平文で保存されます。"
    "本番では JPKI_DELIVERY に smtp / sms を設定してください（開発時のみ --allow-dev-outbox）。"
)


def dev_outbox_refusal(settings: Settings, allow_flag: bool) -> str | None:
    """The message ``serve`` stops with when the development outbox is configured and not explicitly allowed."""
    channels = {part.strip().lower() for part in settings.delivery.split(",")}
    if "outbox" in channels and not (allow_flag or settings.allow_dev_outbox):
        return DEV_OUTBOX_REFUSED
    return None


def _serve(args: argparse.Namespace) -> int:
    import sys

    import uvicorn

    from jpki_remote import heap
    from jpki_remote.config import load_settings
    from jpki_remote.store import Database
    from jpki_remote.web.app import admin_token, create_app
    from jpki_remote.web.background import server_tasks

    settings = load_settings()
    refusal = dev_outbox_refusal(settings, args.allow_dev_outbox)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    db = Database(settings.effective_database_url)
    db.create_schema()
    admin_token(settings)  # make sure it exists (printed location, never the token)
    app = create_app(settings, db=db)
    background = server_tasks(db, settings, app.state.get_engine, getattr(app.state, "status_service", None))
    background.start()
    heap.settle()  # everything set up so far lives as long as the server
    print(f"admin token in {settings.data_dir / 'admin-token'}" if not settings.admin_token else "admin token set")
    try:
        uvicorn.run(app, host=args.host or settings.host, port=args.port or settings.port, log_level="info")
    finally:
        background.stop()
    return 0


def _deliver_pending(args: argparse.Namespace) -> int:
    import sys
    import time

    from jpki_remote.config import load_settings
    from jpki_remote.proofing.notify import deliver_pending
    from jpki_remote.store import Database

    if args.limit < 1 or args.loop < 0:
        print("error: --limit must be at least 1 and --loop not negative", file=sys.stderr)
        return 2
    settings = load_settings()
    try:
        db = Database(settings.effective_database_url)
        db.create_schema()
        while True:
            report = deliver_pending(db=db, settings=settings, limit=args.limit)
            print(
                f"notices: {report.sent} sent, {report.retry_later} to retry later, {report.failed} failed", flush=True
            )
            if args.loop <= 0:
                return 0
            time.sleep(args.loop)
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # one clear line for the operator (database down, bad delivery settings)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
