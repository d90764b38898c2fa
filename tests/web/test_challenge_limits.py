"""``POST /terminals/challenge`` is bounded (finding S-16): requests are counted per claimed terminal id and per
client address (counters in the database or in Redis), over a limit the answer is 429 ``rate_limited`` with
``Retry-After`` in the API's one error body and no row is written — the same for an unknown terminal id as for a
registered one — and expired or used challenges are purged, a bounded batch at a time, by each new challenge."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from jpki_remote.config import Settings
from jpki_remote.proofing.limits import TERMINAL_CHALLENGE_RULES, Limits, Scope
from jpki_remote.store import Database
from jpki_remote.terminal.client import ServerClient
from jpki_remote.terminal.keys import load_or_create_key, public_bytes
from jpki_remote.terminal.models import TerminalChallenge
from jpki_remote.terminal.service import CHALLENGE_PURGE_BATCH, issue_challenge, now, register_terminal
from jpki_remote.web.app import create_app
from jpki_remote.web.error_answers import ErrorBody

API = "/api/v1"
CHALLENGE = f"{API}/terminals/challenge"
PROXY = "10.0.0.1"  # a trusted reverse proxy: the client's address arrives in X-Forwarded-For
RULES = {rule.scope: rule for rule in TERMINAL_CHALLENGE_RULES}


@dataclass
class App:
    client: TestClient
    db: Database
    settings: Settings
    tmp: Path

    def challenge(self, terminal_id: str, address: str) -> httpx.Response:
        return self.client.post(CHALLENGE, json={"terminal_id": terminal_id}, headers={"X-Forwarded-For": address})

    def register(self, name: str) -> ServerClient:
        key = load_or_create_key(self.tmp / f"{name}.key")
        with self.db.session() as s:
            terminal_id = register_terminal(s, kind="kiosk", name=name, public_key=public_bytes(key)).id
        return ServerClient("http://testserver", terminal_id, key, http=self.client)

    def rows(self, terminal_id: str) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).where(TerminalChallenge.terminal_id == terminal_id)) or 0)


def _app(db: Database, tmp_path: Path, **overrides: object) -> App:
    settings = Settings(data_dir=tmp_path / "data").with_overrides(
        admin_token="admin-" + "z" * 30, trusted_proxies=PROXY, **overrides
    )
    app = create_app(settings, db=db, mount_status=False)
    return App(TestClient(app, raise_server_exceptions=False, client=(PROXY, 40000)), db, settings, tmp_path)


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def limited(request: pytest.FixtureRequest, database: Database, tmp_path: Path) -> Iterator[App]:
    """The app over SQLite and PostgreSQL, its challenge counters in the database or in Redis."""
    if request.param == "database":
        yield _app(database, tmp_path)
        return
    prefix = f"jpki-test:{secrets.token_hex(6)}:"
    app = _app(database, tmp_path, redis_url="redis://127.0.0.1:6379/0", redis_key_prefix=prefix)
    redis = Limits.for_terminal_challenges(app.settings, database).store.client
    try:
        yield app
    finally:
        keys = list(redis.scan_iter(match=prefix + "*"))
        if keys:
            redis.delete(*keys)


@pytest.fixture
def plain(sqlite_database: Database, tmp_path: Path) -> App:
    return _app(sqlite_database, tmp_path)


def _until_refused(app: App, terminal_id: str, addresses: Iterator[str]) -> tuple[int, httpx.Response]:
    for count in range(1, 1000):
        response = app.challenge(terminal_id, next(addresses))
        if response.status_code != 200:
            return count, response
    raise AssertionError("never refused")


def _addresses(prefix: str) -> Iterator[str]:
    return (f"{prefix}.{i // 250}.{i % 250 + 1}" for i in range(10_000))


def _answer(response: httpx.Response) -> tuple[int, dict]:
    return response.status_code, response.json()


def test_one_terminal_id_is_limited_alike_known_or_unknown(limited: App) -> None:
    """From ever-new addresses, so only the per-terminal rule can refuse: the same count, the same 429 for a
    registered terminal id and an unknown one, with Retry-After, and nothing written for the refused request."""
    app = limited
    known = app.register("kiosk-a").terminal_id
    unknown = "t" + secrets.token_hex(12)
    known_count, known_refused = _until_refused(app, known, _addresses("198.18"))
    unknown_count, unknown_refused = _until_refused(app, unknown, _addresses("198.19"))
    rule = RULES[Scope.TERMINAL]
    assert known_count == unknown_count == rule.limit + 1
    assert _answer(known_refused) == _answer(unknown_refused)
    status, body = _answer(known_refused)
    assert status == 429
    ErrorBody.model_validate(body)  # the API's one error body, no other keys
    assert body["error"]["code"] == "rate_limited" and "try again later" in body["error"]["message_en"]
    for refused in (known_refused, unknown_refused):
        assert 1 <= int(refused.headers["retry-after"]) <= rule.lockout_seconds
    assert app.rows(known) == app.rows(unknown) == rule.limit  # the refused requests wrote nothing
    # still refused while locked out, from anywhere; another terminal signs in as usual
    assert app.challenge(known, "203.0.113.9").status_code == 429
    other = app.register("kiosk-b")
    other.authenticate()
    assert other.whoami()["terminal_id"] == other.terminal_id


def test_one_address_is_limited_across_terminal_ids(plain: App) -> None:
    """Fresh terminal ids from one address: refused after the address rule's limit, a registered terminal too,
    from that address only; the lockout is the challenge's own — the procedure limits of the address are free."""
    app = plain
    address = "198.51.100.7"
    ids = (f"t{secrets.token_hex(12)}" for _ in range(10_000))
    count = 0
    while True:
        count += 1
        response = app.challenge(next(ids), address)
        if response.status_code != 200:
            break
        assert count <= RULES[Scope.ADDRESS].limit, "never refused"
    assert count == RULES[Scope.ADDRESS].limit + 1
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= RULES[Scope.ADDRESS].lockout_seconds
    kiosk = app.register("kiosk-c")
    assert app.challenge(kiosk.terminal_id, address).status_code == 429
    # the same terminal from another address: challenge, signature, session — a normal sign-in
    kiosk.http.headers["X-Forwarded-For"] = "198.51.100.8"
    kiosk.authenticate()
    assert kiosk.whoami()["terminal_id"] == kiosk.terminal_id
    procedure_limits = Limits.from_settings(app.settings, app.db)
    assert procedure_limits.status(address=address) == []  # not locked out of procedures


def test_expired_and_used_challenges_are_purged_in_bounded_batches(database: Database) -> None:
    """Every new challenge deletes at most CHALLENGE_PURGE_BATCH dead rows (expired, or used up by a sign-in,
    failed or not); live ones stay. So dead rows go faster than they come, and no statement is unbounded."""
    stamp = now()
    dead = CHALLENGE_PURGE_BATCH + 36
    with database.session() as s:
        for i in range(dead):
            expired = i % 2 == 0
            s.add(
                TerminalChallenge(
                    nonce_hash=secrets.token_hex(32),
                    terminal_id="t-old",
                    expires_at=stamp - timedelta(seconds=1) if expired else stamp + timedelta(minutes=2),
                    used=not expired,
                )
            )
        for _ in range(5):
            s.add(
                TerminalChallenge(
                    nonce_hash=secrets.token_hex(32),
                    terminal_id="t-live",
                    expires_at=stamp + timedelta(minutes=2),
                    used=False,
                )
            )

    def count(terminal_id: str) -> int:
        with database.session() as s:
            return int(s.scalar(select(func.count()).where(TerminalChallenge.terminal_id == terminal_id)) or 0)

    with database.session() as s:
        issue_challenge(s, "t-new")
    assert count("t-old") == dead - CHALLENGE_PURGE_BATCH
    with database.session() as s:
        issue_challenge(s, "t-new")
    assert count("t-old") == 0
    assert count("t-live") == 5 and count("t-new") == 2


def test_a_sign_in_leaves_no_challenge_behind(plain: App) -> None:
    app = plain
    kiosk = app.register("kiosk-d")
    kiosk.authenticate()
    assert app.rows(kiosk.terminal_id) == 1  # used up, still there
    app.challenge("t" + secrets.token_hex(12), "192.0.2.1")
    assert app.rows(kiosk.terminal_id) == 0  # purged by the next challenge


def test_the_429_is_documented_with_retry_after(plain: App) -> None:
    operation = plain.client.get(f"{API}/openapi.json").json()["paths"][CHALLENGE]["post"]
    answer = operation["responses"]["429"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer"
