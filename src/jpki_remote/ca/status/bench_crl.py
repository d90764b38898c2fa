"""`jpki-remote bench crl --revoked N`: publish every shard CRL for N revoked certificates (rows really in the
database), beside one monolithic CRL built by pyca/cryptography (the whole list passed to the builder) — each
variant in its own fresh Python process, timed, with its peak RSS (``getrusage`` of that process)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REASONS = (None, 1, 4, 5)  # unspecified (no extension), keyCompromise, superseded, cessationOfOperation


def _settings(directory: Path, shards: int):  # type: ignore[no-untyped-def]
    from jpki_remote.config import Settings

    return Settings(data_dir=directory, crl_shards=shards, public_base_url="http://127.0.0.1:8080")


def _peak_rss_mib() -> float:
    """Peak RSS of this process image: VmHWM (getrusage's ru_maxrss survives fork/exec from a large parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _populate(url: str, directory: Path, count: int, shards: int) -> float:
    from jpki_remote.ca.models import AuthorityKind, Certificate, CertificateState
    from jpki_remote.ca.status import sandbox
    from jpki_remote.store import Database

    db = Database(url)
    db.create_schema()
    keys = sandbox.MemoryKeyStore()
    authority = sandbox.create_authority(db, keys, AuthorityKind.AUTHENTICATION)
    (directory / "ca-key.pem").write_bytes(keys.export_pem(authority.key_label))
    (directory / "ca-label").write_text(authority.key_label)
    started = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    not_after = now + timedelta(days=365 * 5)
    table = Certificate.__table__
    chunk = 50_000
    with db.engine.begin() as connection:
        for offset in range(0, count, chunk):
            rows = []
            for i in range(offset, min(offset + chunk, count)):
                serial = secrets.randbits(71) | (1 << 71)
                rows.append(
                    {
                        "authority": AuthorityKind.AUTHENTICATION,
                        "serial_hex": format(serial, "x"),
                        "request_id": f"bench-{i}",
                        "state": CertificateState.REVOKED,
                        "holder_ref": "bench",
                        "shard": serial % shards,
                        "not_after": not_after,
                        "reserved_at": now,
                        "revoked_at": now - timedelta(seconds=i),
                        "revocation_reason": REASONS[i % len(REASONS)],
                        "invalidity_date": now - timedelta(days=1) if i % 20 == 0 else None,
                    }
                )
            connection.execute(table.insert(), rows)
    db.dispose()
    return time.perf_counter() - started


def _child_sharded(url: str, directory: Path, shards: int) -> dict[str, object]:
    from jpki_remote.ca.models import AuthorityKind
    from jpki_remote.ca.status import sandbox
    from jpki_remote.ca.status.crl import publish_all
    from jpki_remote.store import Database

    keys = sandbox.MemoryKeyStore()
    keys.import_pem((directory / "ca-label").read_text(), (directory / "ca-key.pem").read_bytes())
    db = Database(url)
    baseline = _peak_rss_mib()
    cpu = time.process_time()
    started = time.perf_counter()
    published = publish_all(db, keys, _settings(directory, shards), force=True, kinds=[AuthorityKind.AUTHENTICATION])
    seconds = time.perf_counter() - started
    db.dispose()
    return {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mib": _peak_rss_mib(),
        "baseline_rss_mib": baseline,
        "entries": sum(p.entries for p in published),
        "bytes": sum(p.size for p in published),
        "shards": len(published),
        "largest_shard": max(p.entries for p in published),
        "lint": sorted({p.lint.split("(")[0] for p in published}),
    }


def _child_pyca(url: str, directory: Path) -> dict[str, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from sqlalchemy import select

    from jpki_remote.ca.models import Authority, Certificate, CertificateState
    from jpki_remote.store import Database

    key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), password=None)
    db = Database(url)
    baseline = _peak_rss_mib()
    cpu = time.process_time()
    started = time.perf_counter()
    with db.session() as session:
        issuer = x509.load_der_x509_certificate(session.execute(select(Authority.certificate_der)).scalar_one())
        rows = session.execute(
            select(Certificate.serial_hex, Certificate.revoked_at, Certificate.revocation_reason).where(
                Certificate.state == CertificateState.REVOKED
            )
        ).all()
    flags = {code: x509.CRLReason(x509.ReasonFlags(_REASON_NAMES[code])) for code in (1, 4, 5)}
    entries = []
    for serial_hex, revoked_at, reason in rows:
        builder = x509.RevokedCertificateBuilder().serial_number(int(serial_hex, 16)).revocation_date(revoked_at)
        if reason:
            builder = builder.add_extension(flags[reason], critical=False)
        entries.append(builder.build())
    del rows
    built = time.perf_counter()
    now = datetime.now(UTC)
    crl = (
        x509.CertificateRevocationListBuilder(
            issuer_name=issuer.subject,
            last_update=now,
            next_update=now + timedelta(days=1),
            revoked_certificates=entries,
        )
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    der = crl.public_bytes(serialization.Encoding.DER)
    seconds = time.perf_counter() - started
    db.dispose()
    return {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "entries_seconds": built - started,
        "peak_rss_mib": _peak_rss_mib(),
        "baseline_rss_mib": baseline,
        "entries": len(entries),
        "bytes": len(der),
    }


_REASON_NAMES = {1: "keyCompromise", 4: "superseded", 5: "cessationOfOperation"}


def _run_child(mode: str, url: str, directory: Path, shards: int) -> dict[str, object]:
    command = [sys.executable, "-m", "jpki_remote.ca.status.bench_crl", mode, url, str(directory), str(shards)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{mode} child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> int:
    count, shards = int(args.revoked), int(args.shards)
    if count < 1 or shards < 1:
        print("error: --revoked and --shards must be positive", file=sys.stderr)
        return 2
    directory = Path(tempfile.mkdtemp(prefix="jpki-bench-crl-"))
    url = args.database_url or f"sqlite:///{directory / 'bench.db'}"
    try:
        if args.database_url:
            from jpki_remote.store import Database

            check = Database(url)
            check.create_schema()
            with check.session() as session:
                from sqlalchemy import func, select

                from jpki_remote.ca.models import Certificate

                if session.execute(select(func.count()).select_from(Certificate)).scalar():
                    print("error: --database-url must name an empty database (the benchmark fills it)", file=sys.stderr)
                    return 2
            check.dispose()
        print(f"inserting {count:,} revoked certificates into {url.split('://')[0]} ...", flush=True)
        insert_seconds = _populate(url, directory, count, shards)
        print(f"  inserted in {insert_seconds:.1f} s", flush=True)
        sharded = _run_child("sharded", url, directory, shards)
        print(
            f"sharded   ({shards} shards, our DER encoder, pkilint {'+'.join(sharded['lint'])}): "  # type: ignore[arg-type]
            f"{sharded['seconds']:.2f} s (CPU {sharded['cpu_seconds']:.2f} s), "
            f"peak RSS {sharded['peak_rss_mib']:.0f} MiB "
            f"(after imports {sharded['baseline_rss_mib']:.0f} MiB), {sharded['entries']:,} entries, "
            f"{sharded['bytes'] / 1e6:.1f} MB, largest shard {sharded['largest_shard']:,} entries",
            flush=True,
        )
        if not args.skip_reference:
            reference = _run_child("pyca", url, directory, shards)
            print(
                f"monolithic (pyca/cryptography builder, whole list): {reference['seconds']:.2f} s "
                f"(CPU {reference['cpu_seconds']:.2f} s) "
                f"(entries {reference['entries_seconds']:.2f} s), peak RSS {reference['peak_rss_mib']:.0f} MiB, "
                f"{reference['entries']:,} entries, {reference['bytes'] / 1e6:.1f} MB",
                flush=True,
            )
            print(
                f"ratio: sharded publication is {reference['seconds'] / sharded['seconds']:.1f}x faster and uses "  # type: ignore[operator]
                f"{reference['peak_rss_mib'] / sharded['peak_rss_mib']:.1f}x less peak memory",  # type: ignore[operator]
            )
        goal = sharded["seconds"] < 10 and sharded["peak_rss_mib"] < 200  # type: ignore[operator]
        print(f"goal (< 10 s and < 200 MB for the sharded publication): {'met' if goal else 'NOT met'}")
        load = os.getloadavg()[0]
        if load > (os.cpu_count() or 1):
            print(f"note: load average {load:.1f} on {os.cpu_count()} CPUs — wall times include waiting for a CPU")
        return 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    mode, url, directory, shards = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    output = _child_sharded(url, directory, shards) if mode == "sharded" else _child_pyca(url, directory)
    print(json.dumps(output))
    sys.stdout.flush()
    os._exit(0)
