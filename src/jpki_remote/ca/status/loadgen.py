"""A small HTTP/1.1 load client (asyncio, keep-alive, reconnects when the server closes): the fallback of
``bench ocsp`` when ``wrk`` is not installed. Run as a separate process so it does not share a GIL with a server.

    python -m jpki_remote.ca.status.loadgen HOST PORT PATH SECONDS CONNECTIONS BODIES_FILE

BODIES_FILE holds length-prefixed request bodies (4-byte big-endian length + DER). Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path


def _bodies(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        out.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return out


async def _worker(
    host: str, port: int, requests: list[bytes], deadline: float, latencies: list[float], errors: list[int]
) -> None:
    reader = writer = None
    index = 0
    while time.perf_counter() < deadline:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                errors[0] += 1
                await asyncio.sleep(0.01)
                continue
        request = requests[index % len(requests)]
        index += 1
        started = time.perf_counter()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")  # type: ignore[union-attr]
            length = 0
            close = head.startswith(b"HTTP/1.0") and b"keep-alive" not in head.lower()
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and b"close" in value.lower():
                    close = True
            await reader.readexactly(length)  # type: ignore[union-attr]
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
                errors[1] += 1
            if close:
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            errors[0] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _run(
    host: str, port: int, path: str, seconds: float, connections: int, bodies: list[bytes]
) -> dict[str, object]:
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/ocsp-request\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    latencies: list[float] = []
    errors = [0, 0]
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_worker(host, port, requests[i:] + requests[:i], deadline, latencies, errors) for i in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "socket_errors": errors[0],
        "non_200": errors[1],
    }


def main(argv: list[str]) -> int:
    host, port, path, seconds, connections, bodies_file = argv
    result = asyncio.run(_run(host, int(port), path, float(seconds), int(connections), _bodies(Path(bodies_file))))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
