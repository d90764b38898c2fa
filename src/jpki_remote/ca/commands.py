"""`jpki-remote ca setup | issue | revoke | release-hold | show` and `jpki-remote bench issue`.

The CRL/OCSP commands (``ca publish-crl`` …) live in :mod:`jpki_remote.ca.status.commands`, whose
``register(ca_subparsers, bench)`` is called from here when that package is present. Heavy modules are imported
inside the handlers so ``jpki-remote --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jpki_remote.config import Settings
    from jpki_remote.store import Database

log = logging.getLogger(__name__)

KINDS = ("signature", "authentication")
SEXES = {"1": "1", "2": "2", "3": "3", "male": "1", "female": "2", "unknown": "3"}


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``ca`` (with its sub-commands) to ``subparsers`` and ``issue`` to ``bench``."""
    ca = subparsers.add_parser("ca", help="certification authorities: set up, issue, revoke, show (認証局)")
    ca_sub = ca.add_subparsers(dest="ca_command", metavar="CA_COMMAND")
    ca.set_defaults(handler=lambda _args: _help(ca))

    setup = ca_sub.add_parser("setup", help="create both CAs and their OCSP responder certificates (idempotent)")
    setup.add_argument("--export", metavar="DIR", help="also write the CA and OCSP responder certificates as PEM")
    setup.add_argument(
        "--renew-ocsp", action="store_true", help="re-issue every OCSP responder certificate now (same key)"
    )
    setup.add_argument(
        "--new-ocsp-key", action="store_true", help="replace the OCSP responder keys and certificates now"
    )
    setup.add_argument(
        "--no-ocsp-refresh",
        action="store_true",
        help="after a renewal, leave re-signing the precomputed OCSP responses to the background refresher",
    )
    setup.set_defaults(handler=_guarded(_setup))

    issue = ca_sub.add_parser("issue", help="issue one certificate for a CSR or public key (tests and operators)")
    issue.add_argument("--kind", choices=KINDS, required=True)
    source = issue.add_mutually_exclusive_group(required=True)
    source.add_argument("--csr", metavar="FILE", help="PKCS#10 request (PEM or DER); its signature is checked")
    source.add_argument("--public-key", metavar="FILE", help="SubjectPublicKeyInfo (PEM or DER)")
    issue.add_argument("--request-id", help="idempotency key (default: a new random one, printed)")
    issue.add_argument("--holder-ref", required=True, help="opaque card/holder reference (no personal data)")
    issue.add_argument("--municipality-code", required=True, help="地方公共団体コード, 5 or 6 digits")
    issue.add_argument("--birth-date", required=True, help="YYYY-MM-DD")
    issue.add_argument("--card-expiry", required=True, help="YYYY-MM-DD (the card's expiry date)")
    issue.add_argument("--name", default="", help="氏名 (signature certificate)")
    issue.add_argument("--name-substitute", default="", help="氏名代替文字")
    issue.add_argument("--sex", choices=sorted(SEXES), help="1/male, 2/female, 3/unknown (signature certificate)")
    issue.add_argument("--address", default="", help="住所 (signature certificate)")
    issue.add_argument("--address-substitute", default="", help="住所代替文字")
    issue.add_argument("--prefecture", default="", help="subject L, e.g. Tokyo-to (signature certificate)")
    issue.add_argument("--city", default="", help="subject L, e.g. Kiyose-shi (signature certificate)")
    issue.add_argument("--out", metavar="FILE", help="write the PEM certificate here (default: stdout)")
    issue.set_defaults(handler=_guarded(_issue))

    revoke = ca_sub.add_parser("revoke", help="revoke a certificate (RFC 5280 reason)")
    revoke.add_argument("kind", choices=KINDS)
    revoke.add_argument("serial", help="hex serial (as openssl prints it; colons allowed) or d:<decimal>")
    revoke.add_argument(
        "--reason",
        required=True,
        help="unspecified, keyCompromise, cACompromise, affiliationChanged (signature only), superseded, "
        "cessationOfOperation, certificateHold",
    )
    revoke.add_argument("--at", help="revocation time, ISO 8601 with offset (default: now)")
    revoke.add_argument(
        "--invalidity-date",
        help="when the key is known or suspected to have been compromised (CRL entry invalidityDate), "
        "ISO 8601 with offset, not after the revocation time",
    )
    revoke.set_defaults(handler=_guarded(_revoke))

    release = ca_sub.add_parser("release-hold", help="end a certificateHold suspension (removeFromCRL)")
    release.add_argument("kind", choices=KINDS)
    release.add_argument("serial")
    release.set_defaults(handler=_guarded(_release_hold))

    show = ca_sub.add_parser("show", help="the authorities and certificate counts, or one certificate's status")
    show.add_argument("--kind", choices=KINDS)
    show.add_argument("--serial", help="show this certificate (needs --kind)")
    show.set_defaults(handler=_guarded(_show))

    bench_issue = bench.add_parser("issue", help="certificate pairs/s through reserve, lint, sign, store")
    bench_issue.add_argument("--pairs", type=int, default=400, help="pairs per key store (bounded)")
    bench_issue.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="issuing processes (default: one per CPU)"
    )
    bench_issue.add_argument("--threads", type=int, default=1, help="issuing threads per process")
    bench_issue.add_argument(
        "--lint-workers", type=int, default=0, help="lint processes per issuing process (0: lint in the thread)"
    )
    bench_issue.add_argument("--keystore", choices=["file", "pkcs11", "both"], default="both")
    bench_issue.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL server URL: each run creates and drops its own temporary database there "
        "(default: a temporary SQLite file)",
    )
    bench_issue.set_defaults(handler=_bench_issue)

    _register_status_commands(ca_sub, bench)


def _register_status_commands(ca_sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Let the CRL/OCSP package add its sub-commands, if it is installed."""
    try:
        module = importlib.import_module("jpki_remote.ca.status.commands")
    except ModuleNotFoundError as exc:
        if exc.name not in ("jpki_remote.ca.status", "jpki_remote.ca.status.commands"):
            raise
        return
    module.register(ca_sub, bench)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the CA's typed errors into a one-line message and exit code 1 (no traceback for bad input)."""

    def run(args: argparse.Namespace) -> int:
        from sqlalchemy.exc import SQLAlchemyError

        from jpki_remote.ca.errors import CaError
        from jpki_remote.ca.keystore import KeyStoreError

        try:
            return handler(args)
        except (CaError, KeyStoreError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            print(f"error: database: {detail}", file=sys.stderr)
            return 1

    return run


def _context(*, need_schema: bool = True) -> tuple[Settings, Database, Any]:
    from sqlalchemy import inspect

    from jpki_remote.ca.errors import NotSetUpError
    from jpki_remote.ca.keystore import open_keystore
    from jpki_remote.config import load_settings
    from jpki_remote.store import Database

    settings = load_settings()
    db = Database(settings.effective_database_url)
    if need_schema and not inspect(db.engine).has_table("ca_authorities"):
        raise NotSetUpError("the database has no CA tables yet; run `jpki-remote ca setup`")
    return settings, db, open_keystore(settings)


def _authority(settings: Settings, db: Database, keystore: Any) -> Any:
    from jpki_remote.ca.authority import CertificateAuthority

    return CertificateAuthority(db, keystore, settings)


def _setup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    from jpki_remote.ca.setup import (
        CARD_SURFACE_KEY_LABEL,
        ensure_card_surface_key,
        public_key_fingerprint,
        setup_authorities,
    )

    settings, db, keystore = _context(need_schema=False)
    db.create_schema()
    try:
        surface_key, surface_created = ensure_card_surface_key(keystore)
        results = setup_authorities(
            db,
            keystore,
            settings,
            renew_ocsp=args.renew_ocsp,
            new_ocsp_key=args.new_ocsp_key,
            refresh_ocsp=not args.no_ocsp_refresh,
        )
        surface_fingerprint = public_key_fingerprint(surface_key)
    finally:
        keystore.close()
    for result in results:
        state = "created" if result.created else "exists"
        if result.ocsp_renewed:
            state += ", OCSP responder certificate renewed"
            if args.no_ocsp_refresh:
                state += "; its precomputed OCSP responses are due (background refresher)"
            else:
                state += f"; OCSP responses of {result.ocsp_refreshed} certificate(s) re-signed"
        cert = result.certificate
        print(f"{result.kind.value} CA ({state})")
        print(f"  subject      {cert.subject.rfc4514_string()}")
        print(f"  serial       {cert.serial_number:x}")
        print(f"  valid        {cert.not_valid_before_utc:%Y-%m-%d} .. {cert.not_valid_after_utc:%Y-%m-%d}")
        print(f"  sha256       {cert.fingerprint(hashes.SHA256()).hex(':')}")
        print(f"  OCSP signer  until {result.ocsp_certificate.not_valid_after_utc:%Y-%m-%d}")
        if args.export:
            directory = Path(args.export)
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"{result.kind.value}-ca.pem").write_bytes(cert.public_bytes(Encoding.PEM))
            (directory / f"{result.kind.value}-ocsp.pem").write_bytes(
                result.ocsp_certificate.public_bytes(Encoding.PEM)
            )
    state = "created" if surface_created else "exists"
    print(f"card-surface key {CARD_SURFACE_KEY_LABEL} ({state})")
    print(f"  sha256       {surface_fingerprint}")
    if args.export:
        print(f"certificates written to {args.export}")
    return 0


def _load_public_key(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from jpki_remote.ca.errors import UnsupportedKeyError

    if args.csr:
        data = Path(args.csr).read_bytes()
        try:
            csr = x509.load_pem_x509_csr(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_csr(data)
        except ValueError as exc:
            raise ValueError(f"{args.csr} is not a PKCS#10 request: {exc}") from exc
        if not csr.is_signature_valid:
            raise ValueError(f"{args.csr}: the request's signature does not verify (proof of possession failed)")
        try:
            return csr.public_key()
        except Exception as exc:
            raise UnsupportedKeyError(f"{args.csr}: unsupported public key: {exc}") from exc
    data = Path(args.public_key).read_bytes()
    try:
        if data.lstrip().startswith(b"-----"):
            return serialization.load_pem_public_key(data)
        return serialization.load_der_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{args.public_key} is not a SubjectPublicKeyInfo: {exc}") from exc


def _parse_date(text: str, what: str) -> Any:
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} must be YYYY-MM-DD, not {text!r}") from None


def _issue(args: argparse.Namespace) -> int:
    import secrets
    from pathlib import Path

    from jpki_remote.ca.holder import HolderIdentity, Sex

    public_key = _load_public_key(args)
    holder = HolderIdentity(
        holder_ref=args.holder_ref,
        municipality_code=args.municipality_code,
        birth_date=_parse_date(args.birth_date, "--birth-date"),
        name=args.name,
        name_substitute=args.name_substitute,
        sex=Sex(SEXES[args.sex]) if args.sex else None,
        address=args.address,
        address_substitute=args.address_substitute,
        prefecture=args.prefecture,
        city=args.city,
    )
    request_id = args.request_id or f"cli-{secrets.token_hex(12)}"
    settings, db, keystore = _context()
    ca = _authority(settings, db, keystore)
    try:
        issued = ca.issue(args.kind, request_id, holder, public_key, _parse_date(args.card_expiry, "--card-expiry"))
    finally:
        ca.close()
        keystore.close()
    if args.out:
        Path(args.out).write_bytes(issued.pem)
    else:
        sys.stdout.write(issued.pem.decode())
    print(
        f"issued {issued.kind.value} certificate serial {issued.serial:x} (request {request_id}), "
        f"valid until {issued.not_after:%Y-%m-%d %H:%M:%S} UTC, CRL shard {issued.shard}",
        file=sys.stderr,
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from datetime import datetime

    from jpki_remote.ca.serials import parse_serial

    def moment(value: str | None, option: str) -> datetime | None:
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{option}: not an ISO 8601 time: {value!r}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{option} needs a UTC offset, e.g. 2026-07-01T09:00:00+09:00")
        return parsed

    at = moment(args.at, "--at")
    invalidity_date = moment(args.invalidity_date, "--invalidity-date")
    settings, db, keystore = _context()
    ca = _authority(settings, db, keystore)
    try:
        status = ca.revoke(args.kind, parse_serial(args.serial), args.reason, at=at, invalidity_date=invalidity_date)
    finally:
        ca.close()
        keystore.close()
    when = f"{status.revoked_at:%Y-%m-%d %H:%M:%S} UTC"
    print(f"{status.kind.value} {status.serial:x}: revoked ({status.reason_name}) at {when}")
    if status.invalidity_date is not None:
        print(f"  invalidity date {status.invalidity_date:%Y-%m-%d %H:%M:%S} UTC")
    return 0


def _release_hold(args: argparse.Namespace) -> int:
    from jpki_remote.ca.serials import parse_serial

    settings, db, keystore = _context()
    ca = _authority(settings, db, keystore)
    try:
        status = ca.release_hold(args.kind, parse_serial(args.serial))
    finally:
        ca.close()
        keystore.close()
    print(f"{status.kind.value} {status.serial:x}: hold released, valid again")
    return 0


def _show(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from jpki_remote.ca.models import Authority, Certificate
    from jpki_remote.ca.serials import parse_serial

    settings, db, keystore = _context()
    try:
        if args.serial:
            if not args.kind:
                raise ValueError("--serial needs --kind")
            ca = _authority(settings, db, keystore)
            status = ca.status(args.kind, parse_serial(args.serial))
            if status is None:
                print(f"no {args.kind} certificate with serial {args.serial}")
                return 1
            print(f"{status.kind.value} {status.serial:x}")
            print(f"  state       {status.state.value}" + (f" ({status.reason_name})" if status.reason_name else ""))
            print(f"  holder      {status.holder_ref}")
            print(f"  request     {status.request_id}")
            print(f"  validity    {status.not_before} .. {status.not_after}")
            print(f"  CRL shard   {status.shard}")
            if status.revoked_at:
                print(f"  revoked at  {status.revoked_at}")
            if status.invalidity_date:
                print(f"  invalid since {status.invalidity_date}")
            return 0
        with db.session() as session:
            authorities = list(session.execute(select(Authority).order_by(Authority.kind)).scalars())
            counts = session.execute(
                select(Certificate.authority, Certificate.state, func.count()).group_by(
                    Certificate.authority, Certificate.state
                )
            ).all()
        if not authorities:
            print("no authorities yet; run `jpki-remote ca setup`")
            return 1
        from cryptography import x509

        for row in authorities:
            if args.kind and row.kind.value != args.kind:
                continue
            cert = x509.load_der_x509_certificate(row.certificate_der)
            ocsp = x509.load_der_x509_certificate(row.ocsp_certificate_der)
            print(f"{row.kind.value} CA: {row.subject}")
            print(f"  key {row.key_label}, valid until {cert.not_valid_after_utc:%Y-%m-%d}")
            print(f"  OCSP responder key {row.ocsp_key_label}, valid until {ocsp.not_valid_after_utc:%Y-%m-%d}")
            mine = {state: n for kind, state, n in counts if kind == row.kind}
            print("  certificates: " + (", ".join(f"{s.value} {n}" for s, n in sorted(mine.items())) or "none"))
        if not args.kind:
            _show_surface_key(keystore)
        return 0
    finally:
        keystore.close()


def _show_surface_key(keystore: Any) -> None:
    from jpki_remote.ca.keystore import KeyNotFoundError
    from jpki_remote.ca.setup import CARD_SURFACE_KEY_LABEL, public_key_fingerprint

    try:
        key = keystore.get(CARD_SURFACE_KEY_LABEL)
    except KeyNotFoundError:
        print(f"card-surface key {CARD_SURFACE_KEY_LABEL}: missing; run `jpki-remote ca setup`")
        return
    print(f"card-surface key {CARD_SURFACE_KEY_LABEL}: RSA-{key.public_key().key_size}")
    print(f"  sha256 {public_key_fingerprint(key)}")


def _bench_issue(args: argparse.Namespace) -> int:
    from jpki_remote.ca.bench import run_issue_benchmark

    return run_issue_benchmark(
        pairs=args.pairs,
        processes=args.processes,
        threads=args.threads,
        lint_workers=args.lint_workers,
        keystores=["file", "pkcs11"] if args.keystore == "both" else [args.keystore],
        database_url=args.database_url,
    )
