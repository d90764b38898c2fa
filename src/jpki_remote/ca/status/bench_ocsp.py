"""`jpki-remote bench ocsp`: our responder vs ``openssl ocsp -index … -port …`` (live-signing, a responder we did
not write) — same machine, same certificates, same responder key, same client, same run, loopback only.

Isolation: ``openssl ocsp -port`` takes only a port number and listens on every interface, so the whole benchmark
re-executes itself inside a fresh network namespace (``unshare --net``: only ``lo`` exists there). Where that is not
possible it falls back to a random high port and the shortest run, and says so. Every process started is killed
(process groups) and the temporary directory removed before the command returns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

NETNS_MARK = "JPKI_BENCH_NETNS"
KIND = "signature"


def _in_fresh_netns(args: argparse.Namespace) -> int | None:
    """Re-run this benchmark inside a new network namespace; None when that is not possible here."""
    if os.environ.get(NETNS_MARK) or not shutil.which("unshare") or not shutil.which("ip"):
        return None
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return None
    argv = [
        sys.executable, "-m", "jpki_remote.cli", "bench", "ocsp",
        "--duration", str(args.duration), "--connections", str(args.connections),
        "--certificates", str(args.certificates), "--workers", str(args.workers), "--client", args.client,
    ]  # fmt: skip
    script = 'ip link set lo up && exec "$@"'
    env = dict(os.environ, **{NETNS_MARK: "1"})
    return subprocess.run(["unshare", "--net", "sh", "-c", script, "sh", *argv], env=env, check=False).returncode


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def _wait_log(path: Path, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{text!r} never appeared in {path.name}")


def _wait_answering(port: int, body: bytes, timeout: float = 20) -> None:
    """Wait until the responder answers a real request (connection refused means: not listening yet)."""
    import http.client

    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", f"/ocsp/{KIND}", body, {"Content-Type": "application/ocsp-request"})
            connection.getresponse().read()
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            connection.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _openssl_index(certs: list, revoked: dict[int, datetime]) -> str:  # type: ignore[type-arg]
    lines = []
    for cert in certs:
        expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
        subject = "/" + "/".join(f"{a.oid._name}={a.value}" for a in cert.subject)  # type: ignore[attr-defined]
        serial = format(cert.serial_number, "X")
        serial = serial if len(serial) % 2 == 0 else "0" + serial
        if cert.serial_number in revoked:
            when = revoked[cert.serial_number].strftime("%y%m%d%H%M%SZ")
            lines.append(f"R\t{expiry}\t{when},keyCompromise\t{serial}\tunknown\t{subject}")
        else:
            lines.append(f"V\t{expiry}\t\t{serial}\tunknown\t{subject}")
    return "\n".join(lines) + "\n"


def _lua_script(bodies: list[bytes], path: Path) -> None:
    def literal(body: bytes) -> str:
        return '"' + "".join(f"\\{b}" for b in body) + '"'

    path.write_text(
        # wrk's default resolve() test-connects and closes each address; such an empty connection sends OpenSSL
        # 3.0's single-threaded responder into an endless EOF read loop, so resolve without the probe.
        "wrk.resolve = function(host, service)\n  wrk.addrs = wrk.lookup(host, service)\nend\n"
        "local bodies = {" + ",\n".join(literal(b) for b in bodies) + "}\n"
        "local i = 0\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/ocsp-request"\n'
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[i])\n"
        "end\n"
    )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _run_wrk(port: int, args: argparse.Namespace, script: Path) -> dict[str, object]:
    command = [
        "wrk", "-t1", f"-c{args.connections}", f"-d{max(1, round(args.duration))}s", "--latency", "--timeout", "5s",
        "-s", str(script), f"http://127.0.0.1:{port}/ocsp/{KIND}",
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 60, check=False).stdout

    def latency(label: str) -> float:
        found = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": int(total.group(1)) if total else 0,
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "non_200": int(non2xx.group(1)) if non2xx else 0,
    }


def _run_python_client(port: int, args: argparse.Namespace, bodies_file: Path) -> dict[str, object]:
    command = [
        sys.executable, "-m", "jpki_remote.ca.status.loadgen", "127.0.0.1", str(port), f"/ocsp/{KIND}",
        str(args.duration), str(args.connections), str(bodies_file),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 60, check=False)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def _check_answers(port: int, requests: list[tuple[bytes, str]]) -> None:
    """Every request answered successfully with the expected status (before timing anything)."""
    import http.client

    from cryptography.x509 import ocsp

    for body, expected in requests:  # one connection per request: works whatever the server's keep-alive is
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", f"/ocsp/{KIND}", body, {"Content-Type": "application/ocsp-request"})
            data = connection.getresponse().read()
        finally:
            connection.close()
        parsed = ocsp.load_der_ocsp_response(data)
        if parsed.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RuntimeError(f"responder on port {port} answered {parsed.response_status.name}")
        status = parsed.certificate_status.name.lower()
        if status != expected:
            raise RuntimeError(f"responder on port {port} answered {status}, expected {expected}")


def main(args: argparse.Namespace) -> int:
    isolated = bool(os.environ.get(NETNS_MARK))
    if not isolated:
        code = _in_fresh_netns(args)
        if code is not None:
            return code
        print("warning: no network namespace available; openssl ocsp will listen on all interfaces of a random high "
              "port for the duration of its run only", file=sys.stderr)  # fmt: skip
        args.duration = min(args.duration, 3.0)
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if client == "wrk" and not shutil.which("wrk"):
        print("error: wrk is not installed (apt-get install wrk) — or use --client python", file=sys.stderr)
        return 2
    directory = Path(tempfile.mkdtemp(prefix="jpki-bench-ocsp-"))
    started: list[subprocess.Popen[bytes]] = []
    try:
        return _bench(args, client, directory, started, isolated)
    finally:
        for process in started:
            _kill_group(process)
        shutil.rmtree(directory, ignore_errors=True)


def _bench(
    args: argparse.Namespace,
    client: str,
    directory: Path,
    started: list[subprocess.Popen[bytes]],
    isolated: bool,
) -> int:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    from jpki_remote.ca.models import AuthorityKind
    from jpki_remote.ca.status import precompute, sandbox
    from jpki_remote.config import Settings
    from jpki_remote.store import Database

    settings = Settings(data_dir=directory, crl_shards=16, public_base_url="http://127.0.0.1:8080")
    db = Database(f"sqlite:///{directory / 'bench.db'}")
    db.create_schema()
    keys = sandbox.MemoryKeyStore()
    authority = sandbox.create_authority(db, keys, AuthorityKind(KIND))
    count = max(2, args.certificates)
    certs = [sandbox.issue_certificate(db, keys, settings, authority) for _ in range(count)]
    revoked: dict[int, datetime] = {}
    for cert in certs[::10]:
        when = datetime.now(UTC).replace(microsecond=0)
        sandbox.revoke(db, authority.kind, cert.serial_number, 1, when=when)
        revoked[cert.serial_number] = when
    precompute.refresh(db, keys, settings, authority.kind, [c.serial_number for c in certs])

    pem = serialization.Encoding.PEM
    (directory / "index.txt").write_text(_openssl_index(certs, revoked))
    (directory / "index.txt.attr").write_text("unique_subject = no\n")
    (directory / "ca.pem").write_bytes(authority.certificate.public_bytes(pem))
    (directory / "ocsp.pem").write_bytes(authority.ocsp_certificate.public_bytes(pem))
    (directory / "ocsp.key").write_bytes(keys.export_pem(authority.ocsp_key_label))
    os.chmod(directory / "ocsp.key", 0o600)

    sample = certs[: min(len(certs), 100)]
    bodies = [
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, authority.certificate, hashes.SHA1())  # noqa: S303 - the CertID hash clients send most
        .build()
        .public_bytes(serialization.Encoding.DER)
        for cert in sample
    ]
    expected = [("revoked" if c.serial_number in revoked else "good") for c in sample]
    script = directory / "post.lua"
    _lua_script(bodies, script)
    bodies_file = directory / "bodies.bin"
    bodies_file.write_bytes(b"".join(len(b).to_bytes(4, "big") + b for b in bodies))
    db.dispose()

    def measure(port: int) -> dict[str, object]:
        _check_answers(port, list(zip(bodies, expected, strict=True)))
        return _run_wrk(port, args, script) if client == "wrk" else _run_python_client(port, args, bodies_file)

    # --- openssl ocsp (reference) ---
    openssl_port = _free_port() if isolated else 20000 + int.from_bytes(os.urandom(2), "big") % 40000
    command = [
        "openssl", "ocsp", "-index", str(directory / "index.txt"), "-port", str(openssl_port),
        "-rsigner", str(directory / "ocsp.pem"), "-rkey", str(directory / "ocsp.key"), "-CA", str(directory / "ca.pem"),
        "-nmin", "60",
    ]  # fmt: skip
    # openssl stays one process: with -multi its children stop listening after the first requests here (3.0.19),
    # so --workers > 1 gives only our server more processes, and the output says so.
    log_path = directory / "openssl.log"
    with log_path.open("wb") as log_file:
        reference = subprocess.Popen(command, stdout=log_file, stderr=log_file, start_new_session=True)
    started.append(reference)
    try:
        _wait_log(log_path, "ACCEPT")  # not a probe connection: a bare connect+close wedges openssl 3.0's loop
        _wait_answering(openssl_port, bodies[0])  # with -multi the listening children start later
        theirs = measure(openssl_port)
    except (OSError, RuntimeError) as exc:
        print(f"error: openssl ocsp did not answer properly ({exc}):\n{log_path.read_text()[-2000:]}", file=sys.stderr)
        return 1
    finally:
        _kill_group(reference)

    # --- ours (fast asyncio server, precomputed responses) ---
    our_port = _free_port()
    ours = subprocess.Popen(
        [sys.executable, "-m", "jpki_remote.ca.status.bench_ocsp", str(directory), str(our_port), str(args.workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    started.append(ours)
    try:
        _wait_port(our_port)
        mine = measure(our_port)
    finally:
        _kill_group(ours)

    where = "a private network namespace (only lo)" if isolated else "loopback, random high port (no netns)"
    print(
        f"OCSP responders on {where}; client {client}, {args.connections} connections, {args.duration:g} s each, "
        f"{len(bodies)} distinct requests (SHA-1 CertID, no nonce), {count} certificates; processes: openssl 1, "
        f"ours {args.workers}"
    )
    for name, result in (("openssl ocsp (live signing)", theirs), ("jpki-remote (precomputed)", mine)):
        print(
            f"  {name:<28} {result['rps']:>9.0f} req/s   p50 {result['p50_ms']:.2f} ms   p99 {result['p99_ms']:.2f} ms"
            f"   ({result['requests']} requests, {result['socket_errors']} socket errors, {result['non_200']} non-200)"
        )
    ratio = float(mine["rps"]) / float(theirs["rps"]) if theirs["rps"] else float("inf")  # type: ignore[arg-type]
    print(f"  ratio: {ratio:.1f}x openssl's throughput")
    goal = ratio >= 10 and float(mine["p99_ms"]) < 20  # type: ignore[arg-type]
    print(f"  goal (>= 10x and p99 < 20 ms): {'met' if goal else 'NOT met'}")
    return 0


def _serve_ours(directory: Path, port: int, workers: int) -> None:
    """Child process: serve the benchmark database with the fast server (keys re-read from the sandbox files)."""
    from jpki_remote.ca.models import AuthorityKind
    from jpki_remote.ca.status import sandbox
    from jpki_remote.ca.status.server import run_status_server
    from jpki_remote.ca.status.service import StatusService
    from jpki_remote.config import Settings
    from jpki_remote.store import Database

    settings = Settings(data_dir=directory, crl_shards=16, public_base_url="http://127.0.0.1:8080")
    keys = sandbox.MemoryKeyStore()
    keys.import_pem(f"sandbox-{AuthorityKind(KIND).value}-ocsp", (directory / "ocsp.key").read_bytes())

    def make_service() -> StatusService:
        return StatusService(settings, Database(f"sqlite:///{directory / 'bench.db'}"), keys, cache_ttl=60)

    run_status_server(make_service, "127.0.0.1", port, workers=workers, background=False)


if __name__ == "__main__":
    _serve_ours(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
