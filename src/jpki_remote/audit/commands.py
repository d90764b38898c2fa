"""`jpki-remote audit …` sub-commands and the `bench audit` benchmark.

* ``audit verify [--public-key PEM]…`` — recompute the whole log, check sequence, subtree hashes, every signed head
  and the consistency between successive heads; prints a summary, exit 0 only if everything checks out.
* ``audit show [--procedure ID] [--after SEQ] [--limit N] [--json]`` — list events.
* ``audit prove SEQ [--tree-size N] [--json]`` — inclusion proof of one event, verified before it is printed.
* ``audit sign`` — sign a tree head over everything committed now (for a periodic job).
* ``audit public-key`` — the PEM public key auditors verify signed heads with.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jpki_remote.audit.log import AuditLog
    from jpki_remote.store import Database


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to ``subparsers`` and its benchmarks to ``bench``."""
    audit = subparsers.add_parser("audit", help="the tamper-evident audit log (verify, show, prove, sign)")
    commands = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    audit.set_defaults(handler=lambda _args: _usage(audit))

    verify = commands.add_parser("verify", help="recompute and check the whole log; exit 1 on any problem")
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="PEM",
        help="Ed25519 public key to check signed heads with (repeatable; default: the server's key)",
    )
    verify.set_defaults(handler=_verify)

    show = commands.add_parser("show", help="list events")
    show.add_argument("--procedure", metavar="ID", help="only the events of this procedure")
    show.add_argument("--after", type=int, metavar="SEQ", help="only events after this sequence number")
    show.add_argument("--limit", type=int, default=50, help="at most this many events (default 50)")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.set_defaults(handler=_show)

    prove = commands.add_parser("prove", help="inclusion proof of one event")
    prove.add_argument("seq", type=int, metavar="SEQ")
    prove.add_argument("--tree-size", type=int, help="prove against this tree size (default: latest signed head)")
    prove.add_argument("--json", action="store_true")
    prove.set_defaults(handler=_prove)

    sign = commands.add_parser("sign", help="sign a tree head over everything committed now")
    sign.set_defaults(handler=_sign)

    public_key = commands.add_parser("public-key", help="print the PEM public key of the tree-head signer")
    public_key.set_defaults(handler=_public_key)

    bench_audit = bench.add_parser("audit", help="audit appends and proofs, against plain inserts and lookups")
    bench_audit.add_argument("--events", type=int, default=20000)
    bench_audit.set_defaults(handler=_bench)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _open(*, create_key: bool) -> tuple[Database, AuditLog]:
    from jpki_remote.audit.log import AuditLog
    from jpki_remote.audit.signing import load_or_create_signer, signing_key_path
    from jpki_remote.config import load_settings
    from jpki_remote.store import Database

    settings = load_settings()
    db = Database(settings.effective_database_url)
    key_path = signing_key_path(settings)
    signer = load_or_create_signer(key_path) if create_key or key_path.exists() else None
    return db, AuditLog(db, signer, sth_interval_seconds=settings.audit_sth_interval_seconds)


def _guarded(action: str, run) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import SQLAlchemyError

    from jpki_remote.audit.detail import DetailRejected
    from jpki_remote.audit.merkle import ProofError

    try:
        return int(run())
    except (ProofError, DetailRejected, ValueError, PermissionError) as exc:
        print(f"audit {action}: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        first_line = str(exc).splitlines()[0]
        if "no such table" in first_line or "does not exist" in first_line:
            print(f"audit {action}: this database has no audit log yet (schema not created)", file=sys.stderr)
        else:
            print(f"audit {action}: cannot read the audit log ({type(exc).__name__}: {first_line})", file=sys.stderr)
        return 2


def _verify(args: argparse.Namespace) -> int:
    def run() -> int:
        from pathlib import Path

        from jpki_remote.audit.signing import key_id_of, load_public_key

        db, log = _open(create_key=False)
        try:
            keys = None
            if args.public_key:
                loaded = [load_public_key(Path(p)) for p in args.public_key]
                keys = {key_id_of(k): k for k in loaded}
            report = log.verify(keys)
            print(report.summary())
            return 0 if report.ok else 1
        finally:
            db.dispose()

    return _guarded("verify", run)


def _show(args: argparse.Namespace) -> int:
    def run() -> int:
        db, log = _open(create_key=False)
        try:
            events = log.events(procedure_id=args.procedure, after_seq=args.after, limit=max(1, args.limit))
            for e in events:
                if args.json:
                    print(
                        json.dumps(
                            {
                                "seq": e.seq,
                                "time": e.occurred_at.isoformat(),
                                "actor": e.actor,
                                "terminal": e.terminal_id,
                                "procedure": e.procedure_id,
                                "type": e.event_type,
                                "outcome": e.outcome,
                                "detail": e.detail,
                                "leaf_hash": e.leaf_hash.hex(),
                            },
                            ensure_ascii=False,
                        )
                    )
                else:
                    stamp = e.occurred_at.strftime("%Y-%m-%d %H:%M:%S")
                    print(
                        f"{e.seq:>8}  {stamp}Z  {e.event_type:<28} {e.outcome:<8} actor={e.actor} "
                        f"terminal={e.terminal_id or '-'} procedure={e.procedure_id or '-'} {e.detail_json}"
                    )
            if not events and not args.json:
                print("no events")
            return 0
        finally:
            db.dispose()

    return _guarded("show", run)


def _prove(args: argparse.Namespace) -> int:
    def run() -> int:
        db, log = _open(create_key=False)
        try:
            proof = log.inclusion_proof(args.seq, args.tree_size)
            proof.verify()
            keys = log.public_keys()
            signed = "no signed head for this size"
            if proof.head is not None:
                from jpki_remote.audit.signing import verify_head

                key = keys.get(proof.head.key_id)
                signed = (
                    "signature valid"
                    if key is not None and verify_head(proof.head, key)
                    else "signature NOT verified (unknown key or invalid)"
                )
            if args.json:
                print(json.dumps({**proof.as_dict(), "signed_head_status": signed}, indent=2))
            else:
                print(f"event {proof.seq} in tree of {proof.tree_size} events")
                print(f"leaf hash: {proof.leaf_hash.hex()}")
                print(f"root:      {proof.root_hash.hex()} ({signed})")
                for i, h in enumerate(proof.path):
                    print(f"path[{i}]:   {h.hex()}")
                print("inclusion proof verifies (RFC 9162 §2.1.3.2)")
            return 0 if proof.head is None or signed == "signature valid" else 1
        finally:
            db.dispose()

    return _guarded("prove", run)


def _sign(_args: argparse.Namespace) -> int:
    def run() -> int:
        db, log = _open(create_key=True)
        try:
            head = log.sign_head()
            print(f"signed tree head: size {head.tree_size}, root {head.root_hash.hex()}, key {head.key_id}")
            return 0
        finally:
            db.dispose()

    return _guarded("sign", run)


def _public_key(_args: argparse.Namespace) -> int:
    def run() -> int:
        from jpki_remote.audit.signing import public_key_pem

        db, log = _open(create_key=True)
        db.dispose()
        assert log.signer is not None
        sys.stdout.write(public_key_pem(log.signer.public_key()).decode())
        return 0

    return _guarded("public-key", run)


def _bench(args: argparse.Namespace) -> int:
    from jpki_remote.audit.bench import run_benchmark

    run_benchmark(max(1000, args.events))
    return 0
