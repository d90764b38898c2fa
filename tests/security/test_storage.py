"""Secrets at rest and in logs: key-file permissions of a fresh data directory, the card storage key, codes stored
only as keyed hashes, the audit detail validator, SQL statement logging."""

from __future__ import annotations

import hashlib
import logging
import stat
from pathlib import Path

import pytest

from jpki_remote.config import Settings
from jpki_remote.store import Database

SECRET_NAMES = (".storage-key", ".passphrase", "admin-token", "proofing.key")


@pytest.fixture
def data_dir(tmp_path: Path) -> tuple[Settings, Database]:
    """A data directory as `jpki-remote serve` leaves it: CAs set up, every default port created, a card store."""
    from jpki_remote.ca.keystore import open_keystore
    from jpki_remote.ca.setup import setup_authorities
    from jpki_remote.card.store import CardStore
    from jpki_remote.procedures.ports import default_ports
    from jpki_remote.web.app import admin_token

    settings = Settings(data_dir=tmp_path / "data", delivery="outbox")
    db = Database(settings.effective_database_url)
    db.create_schema()
    setup_authorities(db, open_keystore(settings), settings)
    ports = default_ports(db, settings)
    ports.issuer_keys.master_key(0)
    admin_token(settings)
    CardStore(settings.data_dir / "cards")
    from jpki_remote.audit.signing import signer_from_settings

    signer_from_settings(settings)
    return settings, db


def _is_secret(path: Path) -> bool:
    if path.name in SECRET_NAMES or path.suffix == ".key":
        return True
    try:
        head = path.read_bytes()[:4096]
    except OSError:
        return False
    return b"PRIVATE KEY" in head


def test_key_files_are_private(data_dir: tuple[Settings, Database]) -> None:
    settings, _db = data_dir
    secrets_found = []
    for path in sorted(settings.data_dir.rglob("*")):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & 0o002, f"{path} is world-writable ({mode:o})"
        if path.is_file() and _is_secret(path):
            secrets_found.append(path.relative_to(settings.data_dir))
            assert mode & 0o077 == 0, f"{path} holds a secret but has mode {mode:o} (want 0600)"
            parent = stat.S_IMODE(path.parent.stat().st_mode)
            assert parent & 0o077 == 0 or path.parent == settings.data_dir, f"{path.parent} is {parent:o} (want 0700)"
    names = {p.name for p in secrets_found}
    # the ones we expect to exist: card storage key, issuer master key, admin token, CA key material
    assert {".storage-key", "admin-token", "issuer-master-00.key"} <= names, sorted(names)
    assert len(secrets_found) >= 5, secrets_found


@pytest.fixture
def hsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from jpki_remote.ca.keystore.softhsm import create_softhsm_token, softhsm_available

    if not softhsm_available():
        pytest.skip("SoftHSM2 is not installed")
    created = create_softhsm_token(tmp_path / "hsm")
    monkeypatch.setenv("SOFTHSM2_CONF", str(created.conf))
    return created


@pytest.mark.hsm
def test_issuer_master_key_is_not_stored_in_clear(
    sqlite_database: Database, tmp_path: Path, faces_dir: Path, hsm_token
) -> None:
    """Finding S-6: with ``issuer_keystore = "pkcs11"`` the server's ports take the HSM store, a counter PIN reset runs
    its secure-messaging step with card keys derived inside the HSM, and no master key exists anywhere on disk (nor
    can the process read it: the key object is sensitive and non-extractable)."""
    import dataclasses

    from procedure_world import PINS, make_world, run_agent

    from jpki_remote.card import layout
    from jpki_remote.card.client import CardClient
    from jpki_remote.issuer_keys import IssuerKeyError, Pkcs11IssuerKeys
    from jpki_remote.procedures.ports import default_ports
    from jpki_remote.terminal.agent import ScriptedPinPad

    world = make_world(sqlite_database, tmp_path, faces_dir)
    settings = dataclasses.replace(
        world.settings, issuer_keystore="pkcs11", pkcs11_module=hsm_token.module,
        pkcs11_token_label=hsm_token.label, pkcs11_user_pin=hsm_token.user_pin,
    )
    Pkcs11IssuerKeys(hsm_token.module, hsm_token.label, hsm_token.user_pin).create(0)  # the key ceremony
    keys = default_ports(world.db, settings).issuer_keys
    assert isinstance(keys, Pkcs11IssuerKeys)
    with pytest.raises(IssuerKeyError, match="never leaves the HSM"):
        keys.master_key(0)  # (so the engine below cannot have read it either)
    world.master = keys  # type: ignore[assignment]  # the card is manufactured under the HSM's master key
    world.ports.issuer_keys = keys
    issued = world.issue_card()

    engine = world.engine()
    reply = engine.start(kind="pin_reset", target="auth_pin", channel="counter", card_id=issued.card_id,
                         terminal_id="t-test")
    pinpad = ScriptedPinPad(new_pins={"auth_pin": "9753"})
    reply = run_agent(engine, reply, issued.card, pinpad)
    reply = world.engine().record_staff_check(reply["id"], "staff-7", ["passport"])
    reply = run_agent(world.engine(), reply, issued.card, pinpad)
    assert reply["status"] == "completed", reply  # SET PIN went over SCP03 with HSM-derived card keys
    client = CardClient(issued.card)
    client.select_ap("jpki")
    client.verify(layout.JPKI_AUTH_PIN, "9753")
    assert PINS["auth_pin"] != "9753"
    keys.close()

    on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith("issuer-master")]
    assert on_disk == [], on_disk
    assert not (settings.data_dir / "issuer-keys").exists()


def test_security_codes_are_stored_only_as_keyed_hashes(tmp_path: Path) -> None:
    from sqlalchemy import select

    from jpki_remote.proofing.codes import SecurityCodes
    from jpki_remote.proofing.delivery.base import Contact
    from jpki_remote.proofing.models import SecurityCode

    settings = Settings(data_dir=tmp_path / "data", delivery="outbox")
    db = Database(settings.effective_database_url)
    db.create_schema()
    sent: list[str] = []

    class Capture:
        def send(self, contact, message) -> None:
            sent.append(str(message))

    codes = SecurityCodes(db, settings, deliverer=Capture())  # type: ignore[arg-type]
    codes.issue("proc-1", "renewal", Contact("email", "holder@example.jp"))
    code = next(token for token in " ".join(sent).replace("。", " ").split() if token.isdigit() and len(token) == 6)
    with db.session() as s:
        row = s.scalars(select(SecurityCode)).one()
        stored = bytes(row.code_hash)
    assert code.encode() not in stored and stored != hashlib.sha256(code.encode()).digest()
    # the hash is keyed: without the server secret, 10^6 guesses do not find the code
    assert all(hashlib.sha256(f"proc-1\0renewal\0{guess:06d}".encode()).digest() != stored for guess in range(2000))


@pytest.mark.parametrize(
    "detail",
    [
        {"pin1": 1234},  # a digit suffix hides the word; numbers are never checked
        {"暗証番号": "ABC123"},  # Japanese keys have no ASCII words at all
        {"value": "ABC123"},  # a sign password is letters + digits, not "PIN-like"
        {"entered": "code 482913"},  # a code inside text
        {"blob": "ffd8ffe000104a46494600010100000100010000ffdb"},  # a JPEG in hex
        {"pin_hash": hashlib.sha256(b"1234").hexdigest()},  # an unkeyed hash of 10^4 values is the value
    ],
    ids=["digit-suffix-key", "japanese-key", "sign-password-value", "code-in-text", "hex-jpeg", "pin-hash"],
)
def test_audit_detail_validator_catches_disguised_secrets(detail: dict) -> None:
    from jpki_remote.audit.detail import DetailRejected, validate_detail

    with pytest.raises(DetailRejected):
        validate_detail(detail)


def test_audit_detail_validator_catches_the_plain_cases() -> None:
    from jpki_remote.audit.detail import DetailRejected, validate_detail

    for detail in ({"new_pin": "9999"}, {"security_code": "123456"}, {"x": "482913"}, {"photo": "x"},
                   {"frame": "/9j/4AAQSkZJRg"}, {"x": "data:image/png;base64,iVBORw0KGgo"}, {"x": {"y": {"z": {"w": {
                       "v": 1}}}}}):
        with pytest.raises(DetailRejected):
            validate_detail(detail)
    assert validate_detail({"pin_kind": "auth_pin", "tries_left": 2, "date": "2026-12-04"})


def test_sql_statement_logging_does_not_write_parameters(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from jpki_remote.registry import service as registry

    db = Database(f"sqlite:///{tmp_path / 'j.db'}")
    db.create_schema()
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    with db.session() as s:
        registry.create_municipality(s, "13101", "千代田区", "東京都")
        from datetime import date

        resident = registry.add_resident(s, "131016", family_name="番号", given_name="花子", address="東京都",
                                         birth_date=date(1980, 1, 1), sex=2)
        registry.add_contact(s, resident.id, "email", "private.person@example.jp", verified=True)
    assert caplog.records, "SQL logging produced nothing: the check is void"
    assert not any("private.person@example.jp" in r.getMessage() for r in caplog.records)
