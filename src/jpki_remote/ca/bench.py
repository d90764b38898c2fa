"""`jpki-remote bench issue`: certificate pairs per second through the full issuance path.

For each key store (encrypted file, SoftHSM2) the benchmark sets up fresh authorities in a temporary database and
issues ``pairs`` auth+signature pairs from ``threads`` threads, every pair going through serial reservation,
pkilint, the key-store signature and storage. The reference, measured in the same run, is the bare work
pyca/cryptography does for the same two certificates: build + sign with an in-memory key, no lint, no database.
Holder keys are generated once up front (card key generation is the card's job, not the CA's).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_remote.ca import profiles
from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.ca.distribution import shard_for_serial
from jpki_remote.ca.holder import HolderIdentity, Sex
from jpki_remote.ca.keystore.base import KeyStore
from jpki_remote.ca.lint import Linter, lint_certificate
from jpki_remote.ca.models import AuthorityKind
from jpki_remote.ca.serials import new_serial
from jpki_remote.ca.setup import setup_authorities
from jpki_remote.ca.signing import prepare_certificate
from jpki_remote.ca.validity import certificate_validity
from jpki_remote.config import Settings
from jpki_remote.store import Database

MAX_PAIRS = 100_000
HOLDER = HolderIdentity(
    holder_ref="bench",
    municipality_code="13221",
    birth_date=date(1990, 6, 10),
    name="山田 太郎",
    sex=Sex.MALE,
    address="東京都清瀬市中里一丁目2番3号",
    prefecture="Tokyo-to",
    city="Kiyose-shi",
)


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of this process plus ``pids`` (the lint workers), from /proc."""
    total = sum(os.times()[:2])
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


@dataclass(frozen=True)
class Result:
    label: str
    pairs: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.pairs / self.seconds

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def _reference(pairs: int, keys: list[rsa.RSAPrivateKey], settings: Settings) -> Result:
    """pyca/cryptography alone: build and sign the same two certificates per pair (no lint, no store)."""
    ca_key = keys[-1]
    issued_at = datetime.now(UTC)
    latencies = []
    cpu = _cpu_seconds([])
    start = time.perf_counter()
    for i in range(pairs):
        t0 = time.perf_counter()
        for kind in (AuthorityKind.AUTHENTICATION, AuthorityKind.SIGNATURE):
            validity = certificate_validity(kind, HOLDER.birth_date, issued_at, date(2035, 1, 1))
            serial = new_serial()
            builder = profiles.holder_certificate(
                settings,
                kind,
                HOLDER,
                keys[i % 2].public_key(),
                ca_key.public_key(),
                serial,
                shard_for_serial(serial, settings.crl_shards),
                validity.not_before,
                validity.not_after,
            )
            builder.sign(ca_key, hashes.SHA256())
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    return Result("reference: pyca build+sign only", pairs, seconds, latencies, _cpu_seconds([]) - cpu)


def _lint_only(count: int, keys: list[rsa.RSAPrivateKey], settings: Settings) -> float:
    """Milliseconds pkilint takes per certificate in this process (for the breakdown)."""
    issued_at = datetime.now(UTC)
    validity = certificate_validity(AuthorityKind.SIGNATURE, HOLDER.birth_date, issued_at, date(2035, 1, 1))
    builder = profiles.holder_certificate(
        settings,
        AuthorityKind.SIGNATURE,
        HOLDER,
        keys[0].public_key(),
        keys[-1].public_key(),
        new_serial(),
        0,
        validity.not_before,
        validity.not_after,
    )
    der = prepare_certificate(builder).lint_copy
    lint_certificate(der)
    start = time.perf_counter()
    for _ in range(count):
        lint_certificate(der)
    return (time.perf_counter() - start) / count * 1000


def _full_path(
    label: str,
    pairs: int,
    threads: int,
    linter: Linter,
    keystore: KeyStore,
    database_url: str,
    settings: Settings,
    keys: list[rsa.RSAPrivateKey],
) -> Result:
    db = Database(database_url)
    db.create_schema()
    try:
        setup_authorities(db, keystore, settings)
        ca = CertificateAuthority(db, keystore, settings, linter=linter)
        run = os.urandom(4).hex()
        auth_key, sign_key = keys[0].public_key(), keys[1].public_key()
        # warm up: authority loading, validator containers in every lint worker, a session per thread
        with ThreadPoolExecutor(threads) as pool:
            list(
                pool.map(
                    lambda i: ca.issue_pair(f"warm-{run}-{i}", HOLDER, auth_key, sign_key, date(2035, 1, 1)),
                    range(max(threads, linter.workers) * 2),
                )
            )
        latencies: list[float] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            t0 = time.perf_counter()
            ca.issue_pair(f"bench-{run}-{i}", HOLDER, auth_key, sign_key, date(2035, 1, 1))
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)

        pids = linter.worker_pids()
        cpu = _cpu_seconds(pids)
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(pairs)))
        seconds = time.perf_counter() - start
        return Result(label, pairs, seconds, latencies, _cpu_seconds(pids) - cpu)
    finally:
        db.dispose()


@contextmanager
def _temporary_database(server_url: str, workdir: Path) -> Iterator[str]:
    """A fresh database for one run: a SQLite file, or a temporary database created (and dropped) on the
    PostgreSQL server of ``server_url`` — never the tables of an existing deployment."""
    if not server_url:
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"jpki_bench_{os.urandom(6).hex()}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _open_store(kind: str, directory: Path) -> tuple[KeyStore, Callable[[], None]]:
    if kind == "file":
        from jpki_remote.ca.keystore.files import FileKeyStore

        store: KeyStore = FileKeyStore(directory / "keys", "bench passphrase")
        return store, store.close
    from jpki_remote.ca.keystore.pkcs11 import Pkcs11KeyStore
    from jpki_remote.ca.keystore.softhsm import create_softhsm_token

    token = create_softhsm_token(directory / "hsm")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(token.conf)
    store = Pkcs11KeyStore(token.module, token.label, token.user_pin)

    def close() -> None:
        store.close()
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous

    return store, close


def run_issue_benchmark(
    *, pairs: int, threads: int, lint_workers: int, keystores: list[str], database_url: str = ""
) -> int:
    for name in ("alembic", "jpki_remote.ca.setup"):  # set-up chatter would drown the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    pairs = max(1, min(pairs, MAX_PAIRS))
    threads = max(1, threads)
    settings = Settings(data_dir=Path(tempfile.gettempdir()), ca_lint_workers=lint_workers)
    print(
        f"bench issue: {pairs} pairs per run, {threads} threads, {lint_workers} lint processes, "
        f"{os.cpu_count()} CPUs, database {'PostgreSQL' if database_url.startswith('postgres') else 'SQLite'}"
    )
    load = os.getloadavg()
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    reference = _reference(pairs, keys, settings)
    lint_ms = _lint_only(min(pairs, 200), keys, settings)
    results = [reference]
    linter = Linter(lint_workers)
    try:
        for kind in keystores:
            workdir = Path(tempfile.mkdtemp(prefix=f"jpki-bench-{kind}-"))
            try:
                store, close = _open_store(kind, workdir)
                try:
                    label = "full path, encrypted key file" if kind == "file" else "full path, SoftHSM2 (PKCS#11)"
                    with _temporary_database(database_url, workdir) as url:
                        results.append(_full_path(label, pairs, threads, linter, store, url, settings, keys))
                finally:
                    close()
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        linter.close()
    print(f"pkilint in-process: {lint_ms:.2f} ms per certificate ({1000 / lint_ms / 2:.0f} pairs/s on one core)")
    print(f"load average before: {load[0]:.2f}  after: {os.getloadavg()[0]:.2f} (other work on the machine)")
    print(
        f"{'run':<36} {'pairs':>6} {'seconds':>8} {'pairs/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'CPU ms/pair':>11} {'vs reference':>12}"
    )
    for result in results:
        ratio = result.rate / reference.rate
        print(
            f"{result.label:<36} {result.pairs:>6} {result.seconds:>8.2f} {result.rate:>8.1f} {result.p(0.5):>7.1f} "
            f"{result.p(0.99):>7.1f} {result.cpu_seconds / result.pairs * 1000:>11.2f} {ratio:>11.3f}x"
        )
    cores = os.cpu_count() or 1
    for result in results[1:]:
        ceiling = cores * result.pairs / result.cpu_seconds
        print(f"{result.label}: CPU-bound ceiling on {cores} idle cores = {ceiling:.0f} pairs/s")
    goal = [r for r in results[1:] if r.rate < 100]
    print("goal >= 100 pairs/s: " + ("met" if not goal else "NOT met by " + ", ".join(r.label for r in goal)))
    return 0
