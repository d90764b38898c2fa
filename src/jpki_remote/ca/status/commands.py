"""`jpki-remote ca publish-crl | refresh-ocsp | serve-status` and `jpki-remote bench ocsp | crl`.

``register(ca_subparsers, bench)`` is called by :mod:`jpki_remote.ca.commands` with the ``ca`` command's
sub-parsers. Heavy modules are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import logging
import sys


def register(ca_subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    publish = ca_subparsers.add_parser("publish-crl", help="build, lint, sign and store the shard CRLs (CRL 発行)")
    publish.add_argument("--force", action="store_true", help="rebuild every shard even if unchanged")
    publish.set_defaults(handler=_publish_crl)

    refresh = ca_subparsers.add_parser("refresh-ocsp", help="re-sign precomputed OCSP responses that are due")
    refresh.add_argument("--kind", choices=["signature", "authentication"], help="with --serial: the authority")
    refresh.add_argument("--serial", action="append", default=[], help="hex serial to re-sign now (repeatable)")
    refresh.set_defaults(handler=_refresh_ocsp)

    serve = ca_subparsers.add_parser("serve-status", help="run the fast OCSP + CRL server (HTTP/1.1, keep-alive)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8081)
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing the socket")
    serve.add_argument("--no-background", action="store_true", help="do not publish CRLs / refresh OCSP here")
    serve.set_defaults(handler=_serve_status)

    ocsp = bench.add_parser("ocsp", help="our OCSP responder vs `openssl ocsp -index` (loopback)")
    ocsp.add_argument("--duration", type=float, default=5.0, help="seconds of load per responder")
    ocsp.add_argument("--connections", type=int, default=16)
    ocsp.add_argument("--certificates", type=int, default=200)
    ocsp.add_argument("--workers", type=int, default=1, help="processes of our server (openssl ocsp runs as one)")
    ocsp.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ocsp.set_defaults(handler=_bench_ocsp)

    crl = bench.add_parser("crl", help="publish sharded CRLs for N revoked certificates vs one pyca CRL")
    crl.add_argument("--revoked", type=int, default=1_000_000)
    crl.add_argument("--shards", type=int, default=16)
    crl.add_argument("--database-url", default="", help="default: a temporary SQLite database")
    crl.add_argument("--skip-reference", action="store_true", help="do not build the monolithic pyca CRL")
    crl.set_defaults(handler=_bench_crl)


def _context():  # type: ignore[no-untyped-def]
    from jpki_remote.ca.keystore import open_keystore
    from jpki_remote.config import load_settings
    from jpki_remote.store import Database

    settings = load_settings()
    return settings, Database(settings.effective_database_url), open_keystore(settings)


def _publish_crl(args: argparse.Namespace) -> int:
    from jpki_remote.ca.status.crl import CrlLintError, publish_all

    settings, db, keys = _context()
    try:
        published = publish_all(db, keys, settings, force=args.force)
    except CrlLintError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except LookupError as exc:
        print(f"error: {exc} (run `jpki-remote ca setup` first)", file=sys.stderr)
        return 1
    finally:
        keys.close()
        db.dispose()
    for shard in published:
        print(
            f"{shard.kind.value}/{shard.shard}.crl #{shard.crl_number}: {shard.entries} entries, {shard.size} bytes, "
            f"next update {shard.next_update:%Y-%m-%d %H:%M}Z, lint {shard.lint}"
        )
    print(f"{len(published)} shard CRL(s) published" if published else "all shard CRLs are current")
    return 0


def _refresh_ocsp(args: argparse.Namespace) -> int:
    from jpki_remote.ca.status import precompute

    settings, db, keys = _context()
    try:
        if args.serial:
            if not args.kind:
                print("error: --serial needs --kind", file=sys.stderr)
                return 2
            try:
                serials = [int(value, 16) for value in args.serial]
            except ValueError:
                print("error: serials are hexadecimal", file=sys.stderr)
                return 2
            done = precompute.refresh(db, keys, settings, args.kind, serials)
        else:
            done = precompute.refresh_due(db, keys, settings)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        keys.close()
        db.dispose()
    print(f"{done} certificate(s) refreshed")
    return 0


def _serve_status(args: argparse.Namespace) -> int:
    from jpki_remote.ca.keystore import open_keystore
    from jpki_remote.ca.status.server import run_status_server
    from jpki_remote.ca.status.service import StatusService
    from jpki_remote.config import load_settings
    from jpki_remote.store import Database

    settings = load_settings()

    def make_service() -> StatusService:
        service = StatusService(settings, Database(settings.effective_database_url), open_keystore(settings))
        service.subscribe()
        return service

    def ready(port: int) -> None:
        print(f"OCSP and CRLs on http://{args.host}:{port} (/ocsp/{{kind}}, /crl/{{kind}}/{{shard}}.crl)", flush=True)

    return run_status_server(
        make_service, args.host, args.port, workers=args.workers, background=not args.no_background, on_ready=ready
    )


def _quiet_set_up() -> None:
    """Schema migrations and CA set-up log at INFO; in a benchmark that chatter would drown the figures."""
    for name in ("alembic", "jpki_remote.ca.setup"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _bench_ocsp(args: argparse.Namespace) -> int:
    from jpki_remote.ca.status.bench_ocsp import main

    _quiet_set_up()
    return main(args)


def _bench_crl(args: argparse.Namespace) -> int:
    from jpki_remote.ca.status.bench_crl import main

    _quiet_set_up()
    return main(args)
