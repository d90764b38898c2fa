"""`jpki-remote serve`: the web application (JSON API, OCSP/CRL, pages) under uvicorn."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to ``subparsers`` and its benchmarks to ``bench``."""
    del bench
    parser = subparsers.add_parser("serve", help="run the web application (API, OCSP/CRL, pages)")
    parser.add_argument("--host", default=None, help="default: JPKI_HOST (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="default: JPKI_PORT (8080)")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import threading

    import uvicorn

    from jpki_remote.config import load_settings
    from jpki_remote.store import Database
    from jpki_remote.web.app import admin_token, create_app

    settings = load_settings()
    db = Database(settings.effective_database_url)
    db.create_schema()
    admin_token(settings)  # make sure it exists (printed location, never the token)
    app = create_app(settings, db=db)
    stop = threading.Event()

    def recover_periodically() -> None:  # stale procedures are finished or rolled back
        while not stop.wait(60):
            try:
                app.state.get_engine().recover()
            except Exception:  # noqa: S112 - logged by the engine; try again next minute
                continue

    worker = threading.Thread(target=recover_periodically, name="procedure-recovery", daemon=True)
    worker.start()
    print(f"admin token in {settings.data_dir / 'admin-token'}" if not settings.admin_token else "admin token set")
    try:
        uvicorn.run(app, host=args.host or settings.host, port=args.port or settings.port, log_level="info")
    finally:
        stop.set()
    return 0
