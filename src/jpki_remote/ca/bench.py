"""`jpki-remote bench issue`: certificate pairs per second through the full issuance path.

For each key store (encrypted file, SoftHSM2) the benchmark sets up fresh authorities in a temporary database and
issues ``pairs`` auth+signature pairs, every pair going through serial reservation, pkilint, the key-store signature
and storage. The CA scales out by processes: each issuing process is an independent
:class:`~jpki_remote.ca.authority.CertificateAuthority` over the shared database and key store, coordinated only by
the database (the reservation row per request id and the conditional store), exactly as several CA instances of a
deployment are. By default there is one issuing process per CPU, each issuing from one thread and linting in that
thread — on CPython, threads of one process share one interpreter lock, and handing lint to a process pool costs
more in scheduling and pickling than it saves (both layouts stay selectable to compare).

The reference, measured in the same run, is the bare work pyca/cryptography does for the same two certificates:
build + sign with an in-memory key, no lint, no database.
Holder keys are generated once up front (card key generation is the card's job, not the CA's).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
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
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_remote import heap
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
MAX_PROCESSES = 64
CARD_EXPIRY = date(2035, 1, 1)
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


@dataclass(frozen=True)
class Layout:
    """How the run issues: ``processes`` independent CertificateAuthority processes over one database and key
    store (how the CA scales out), each with ``threads`` issuing threads and ``lint_workers`` lint processes."""

    processes: int
    threads: int
    lint_workers: int

    def __str__(self) -> str:
        return (
            f"{self.processes} issuing process{'es' if self.processes != 1 else ''} × {self.threads} "
            f"thread{'s' if self.threads != 1 else ''}, lint "
            + (f"in {self.lint_workers} worker processes each" if self.lint_workers else "in the issuing thread")
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


@dataclass(frozen=True)
class StoreSpec:
    """How an issuing process opens the run's key store (picklable: crosses into spawned processes)."""

    kind: str  # "file" or "pkcs11"
    directory: str = ""  # file: the key directory
    passphrase: str = ""
    module: str = ""  # pkcs11
    token_label: str = ""
    user_pin: str = ""

    def open(self) -> KeyStore:
        if self.kind == "file":
            from jpki_remote.ca.keystore.files import FileKeyStore

            return FileKeyStore(Path(self.directory), self.passphrase)
        from jpki_remote.ca.keystore.pkcs11 import Pkcs11KeyStore

        return Pkcs11KeyStore(self.module, self.token_label, self.user_pin)


@dataclass(frozen=True)
class _Share:
    """One issuing process's part of a run."""

    database_url: str
    store: StoreSpec
    settings: Settings
    auth_key: bytes  # DER SubjectPublicKeyInfo
    sign_key: bytes
    run: str
    first: int
    count: int
    threads: int
    lint_workers: int


@dataclass(frozen=True)
class _ShareResult:
    started: float  # time.perf_counter() (CLOCK_MONOTONIC: comparable across processes on one machine)
    finished: float
    latencies: list[float]
    cpu_seconds: float


def _issue_share(share: _Share, ready: Callable[[], None] | None = None) -> _ShareResult:
    """Issue ``share.count`` pairs from ``share.threads`` threads through one CertificateAuthority.

    ``ready`` is called after the warm-up (authority loading, validator containers, one session per thread) and
    returns when every process of the run is ready, so the timed part of all processes starts together."""
    db = Database(share.database_url)
    keystore = share.store.open()
    linter = Linter(share.lint_workers)
    try:
        ca = CertificateAuthority(db, keystore, share.settings, linter=linter)
        auth_key = serialization.load_der_public_key(share.auth_key)
        sign_key = serialization.load_der_public_key(share.sign_key)
        assert isinstance(auth_key, rsa.RSAPublicKey) and isinstance(sign_key, rsa.RSAPublicKey)
        warm = max(share.threads, share.lint_workers) * 2
        with ThreadPoolExecutor(share.threads) as pool:
            list(
                pool.map(
                    lambda i: ca.issue_pair(f"warm-{share.run}-{i}", HOLDER, auth_key, sign_key, CARD_EXPIRY),
                    range(share.first, share.first + warm),
                )
            )
        heap.settle()  # as `jpki-remote serve` does once it is set up
        if ready is not None:
            ready()
        latencies: list[float] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            t0 = time.perf_counter()
            ca.issue_pair(f"bench-{share.run}-{i}", HOLDER, auth_key, sign_key, CARD_EXPIRY)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)

        pids = linter.worker_pids()
        cpu = _cpu_seconds(pids)
        started = time.perf_counter()
        with ThreadPoolExecutor(share.threads) as pool:
            list(pool.map(one, range(share.first, share.first + share.count)))
        finished = time.perf_counter()
        return _ShareResult(started, finished, latencies, _cpu_seconds(pids) - cpu)
    finally:
        linter.close()
        keystore.close()
        db.dispose()


def _process_main(share: _Share, barrier: Any, results: Any) -> None:
    """Entry point of a spawned issuing process: its result (or its error) goes back through ``results``."""
    for name in ("alembic", "jpki_remote.ca.setup"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        results.put(_issue_share(share, lambda: barrier.wait(timeout=600)))
    except BaseException as exc:  # reported to the parent, which fails the run with it
        barrier.abort()
        results.put(f"{type(exc).__name__}: {exc}")


def _run_shares(shares: list[_Share]) -> list[_ShareResult]:
    if len(shares) == 1:
        return [_issue_share(shares[0])]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(shares))
    results = context.Queue()
    processes = [context.Process(target=_process_main, args=(share, barrier, results)) for share in shares]
    for process in processes:
        process.start()
    try:
        answers = [results.get(timeout=1800) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    errors = [a for a in answers if isinstance(a, str)]
    if errors:
        raise RuntimeError("an issuing process failed: " + "; ".join(errors))
    return answers


def _full_path(
    label: str,
    pairs: int,
    layout: Layout,
    store: StoreSpec,
    database_url: str,
    settings: Settings,
    keys: list[rsa.RSAPrivateKey],
) -> Result:
    db = Database(database_url)
    db.create_schema()
    keystore = store.open()
    try:
        setup_authorities(db, keystore, settings)
    finally:
        keystore.close()
        db.dispose()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    auth_key, sign_key = (k.public_key().public_bytes(serialization.Encoding.DER, spki) for k in keys[:2])
    run = os.urandom(4).hex()
    per_process, extra = divmod(pairs, layout.processes)
    shares, first = [], 0
    for n in range(layout.processes):
        count = per_process + (1 if n < extra else 0)
        shares.append(
            _Share(
                database_url,
                store,
                settings,
                auth_key,
                sign_key,
                run,
                first,
                count,
                layout.threads,
                layout.lint_workers,
            )
        )
        first += count + 1000  # warm-up request ids of each process stay apart too
    done = _run_shares([share for share in shares if share.count > 0])
    seconds = max(d.finished for d in done) - min(d.started for d in done)
    latencies = [latency for d in done for latency in d.latencies]
    return Result(label, pairs, seconds, latencies, sum(d.cpu_seconds for d in done))


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


def _open_store(kind: str, directory: Path) -> tuple[StoreSpec, Callable[[], None]]:
    """A fresh key store of ``kind`` for one run, and how to clean up after it."""
    if kind == "file":
        return StoreSpec("file", directory=str(directory / "keys"), passphrase=secrets.token_hex(16)), lambda: None
    from jpki_remote.ca.keystore.softhsm import create_softhsm_token

    token = create_softhsm_token(directory / "hsm")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(token.conf)  # inherited by the issuing processes

    def close() -> None:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous

    return StoreSpec("pkcs11", module=token.module, token_label=token.label, user_pin=token.user_pin), close


def run_issue_benchmark(
    *,
    pairs: int,
    processes: int,
    threads: int,
    lint_workers: int,
    keystores: list[str],
    database_url: str = "",
) -> int:
    for name in ("alembic", "jpki_remote.ca.setup"):  # set-up chatter would drown the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    pairs = max(1, min(pairs, MAX_PAIRS))
    layout = Layout(max(1, min(processes, MAX_PROCESSES)), max(1, threads), max(0, lint_workers))
    settings = Settings(data_dir=Path(tempfile.gettempdir()), ca_lint_workers=layout.lint_workers)
    print(
        f"bench issue: {pairs} pairs per run, {layout}, {os.cpu_count()} CPUs, "
        f"database {'PostgreSQL' if database_url.startswith('postgres') else 'SQLite'}"
    )
    load = os.getloadavg()
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    heap.settle()  # the reference and the lint figure run under the issuing processes' collector settings
    reference = _reference(pairs, keys, settings)
    lint_ms = _lint_only(min(pairs, 200), keys, settings)
    results = [reference]
    for kind in keystores:
        workdir = Path(tempfile.mkdtemp(prefix=f"jpki-bench-{kind}-"))
        try:
            store, close = _open_store(kind, workdir)
            try:
                label = "full path, encrypted key file" if kind == "file" else "full path, SoftHSM2 (PKCS#11)"
                with _temporary_database(database_url, workdir) as url:
                    results.append(_full_path(label, pairs, layout, store, url, settings, keys))
            finally:
                close()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
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
