"""Setting up the authorities: idempotent, keys never replaced, OCSP responder renewal, key/DB mismatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from jpki_remote.ca.keystore import KeyStoreError
from jpki_remote.ca.keystore.files import FileKeyStore
from jpki_remote.ca.models import Authority, AuthorityKind
from jpki_remote.ca.setup import (
    CARD_SURFACE_KEY_LABEL,
    ensure_card_surface_key,
    load_authority,
    setup_authorities,
)
from jpki_remote.config import Settings
from jpki_remote.store import Database


def _authorities(db: Database) -> dict[AuthorityKind, Authority]:
    with db.session() as session:
        return {a.kind: a for a in session.execute(select(Authority)).scalars()}


def test_setup_creates_both_and_is_idempotent(database: Database, tmp_path: Path, settings: Settings) -> None:
    store = FileKeyStore(tmp_path / "keys", "p")
    first = setup_authorities(database, store, settings)
    assert [(r.kind, r.created) for r in first] == [
        (AuthorityKind.SIGNATURE, True),
        (AuthorityKind.AUTHENTICATION, True),
    ]
    assert store.labels() == [
        "ca-authentication",
        "ca-signature",
        "card-surface",
        "ocsp-authentication",
        "ocsp-signature",
    ]
    surface = store.get(CARD_SURFACE_KEY_LABEL).public_key().public_numbers()
    key_files = {p.name: p.read_bytes() for p in (tmp_path / "keys").glob("*.pem")}
    before = _authorities(database)

    again = setup_authorities(database, FileKeyStore(tmp_path / "keys", "p"), settings)
    assert [(r.created, r.ocsp_renewed) for r in again] == [(False, False), (False, False)]
    after = _authorities(database)
    assert {k: a.certificate_der for k, a in after.items()} == {k: a.certificate_der for k, a in before.items()}
    assert {k: a.ocsp_certificate_der for k, a in after.items()} == {
        k: a.ocsp_certificate_der for k, a in before.items()
    }
    assert {p.name: p.read_bytes() for p in (tmp_path / "keys").glob("*.pem")} == key_files
    assert FileKeyStore(tmp_path / "keys", "p").get(CARD_SURFACE_KEY_LABEL).public_key().public_numbers() == surface


def test_card_surface_key_is_the_one_procedures_use(tmp_path: Path) -> None:
    from jpki_remote.procedures.surface import SURFACE_KEY_LABEL, surface_key

    assert SURFACE_KEY_LABEL == CARD_SURFACE_KEY_LABEL
    store = FileKeyStore(tmp_path / "keys", "p")
    key, created = ensure_card_surface_key(store)
    assert created
    again, created_again = ensure_card_surface_key(FileKeyStore(tmp_path / "keys", "p"))
    assert not created_again and again.public_key().public_numbers() == key.public_key().public_numbers()
    assert surface_key(store).public_key().public_numbers() == key.public_key().public_numbers()


def test_new_database_over_existing_keys_reuses_them(tmp_path: Path, settings: Settings) -> None:
    store = FileKeyStore(tmp_path / "keys", "p")
    one = Database(f"sqlite:///{tmp_path / 'one.db'}")
    two = Database(f"sqlite:///{tmp_path / 'two.db'}")
    for db in (one, two):
        db.create_schema()
    a = setup_authorities(one, store, settings)
    b = setup_authorities(two, store, settings)
    assert all(x.created and y.created for x, y in zip(a, b, strict=True))
    for x, y in zip(a, b, strict=True):
        assert x.certificate.public_key() == y.certificate.public_key()
        assert x.certificate.serial_number != y.certificate.serial_number


def test_ocsp_responder_certificate_is_renewed_in_its_last_quarter(
    sqlite_database: Database, tmp_path: Path, settings: Settings
) -> None:
    store = FileKeyStore(tmp_path / "keys", "p")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    created = setup_authorities(sqlite_database, store, settings, now=start)
    assert not any(
        r.ocsp_renewed for r in setup_authorities(sqlite_database, store, settings, now=start + timedelta(days=200))
    )
    renewed = setup_authorities(sqlite_database, store, settings, now=start + timedelta(days=300))
    assert all(r.ocsp_renewed and not r.created for r in renewed)
    for old, new in zip(created, renewed, strict=True):
        assert new.ocsp_certificate.serial_number != old.ocsp_certificate.serial_number
        assert new.ocsp_certificate.public_key() == old.ocsp_certificate.public_key()  # same responder key
        assert new.ocsp_certificate.not_valid_after_utc == start + timedelta(days=665)
        new.ocsp_certificate.verify_directly_issued_by(old.certificate)
        assert new.certificate == old.certificate


def test_key_store_not_matching_the_database_is_refused(
    sqlite_database: Database, tmp_path: Path, settings: Settings
) -> None:
    setup_authorities(sqlite_database, FileKeyStore(tmp_path / "a", "p"), settings)
    other = FileKeyStore(tmp_path / "b", "p")
    for label in ("ca-signature", "ocsp-signature"):
        other.generate_rsa(label)
    with pytest.raises(KeyStoreError, match="does not match"):
        load_authority(sqlite_database, other, AuthorityKind.SIGNATURE)
    with pytest.raises(KeyStoreError):
        load_authority(sqlite_database, other, AuthorityKind.AUTHENTICATION)  # no such key at all
