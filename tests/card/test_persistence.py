"""Card state on disk: survives restarts, atomic writes (a crash mid-write keeps the old state), secrets sealed."""

from __future__ import annotations

import json
import os

import pytest

from jpki_remote.card import layout
from jpki_remote.card.client import CardClient, PinIncorrectError
from jpki_remote.card.signing import private_to_der
from jpki_remote.card.state import CardState, CardStateError
from jpki_remote.card.store import CardStore


def test_restart_keeps_pin_counters_and_keys(made) -> None:
    created, store = made
    client = CardClient(created.card)
    client.select_ap("jpki")
    with pytest.raises(PinIncorrectError):
        client.verify(layout.JPKI_AUTH_PIN, "0000")
    cert = client.read_auth_certificate()
    restarted = CardClient(CardStore(store.directory).open(created.card_id))
    restarted.select_ap("jpki")
    assert restarted.pin_tries(layout.JPKI_AUTH_PIN) == 2
    assert restarted.read_auth_certificate() == cert
    restarted.verify(layout.JPKI_AUTH_PIN, "1234")


def test_state_file_holds_no_secret_in_clear(made) -> None:
    created, store = made
    raw = store.path(created.card_id).read_bytes()
    der = created.card.state.keys["jpki"][layout.JPKI_AUTH_KEY]
    import base64

    assert base64.b64encode(der) not in raw and der not in raw
    assert b"ABC123" not in raw and base64.b64encode(b"ABC123") not in raw
    doc = json.loads(raw)
    assert set(doc) >= {"sealed", "files", "pins"} and "keys" not in doc
    assert oct(os.stat(store.directory / ".storage-key").st_mode & 0o777) == "0o600"
    with pytest.raises(CardStateError):
        CardState.from_bytes(raw, bytes(32))  # wrong storage key
    tampered = raw.replace(b'"lifecycle":"personalised"', b'"lifecycle":"blank"')
    with pytest.raises(CardStateError):
        CardState.from_bytes(tampered.replace(created.card_id.encode(), b"other"), store._key)


def test_private_keys_are_not_reachable_through_any_api(made) -> None:
    created, _ = made
    summary = json.dumps(created.card.state.public_summary())
    assert "PRIVATE" not in summary and "sealed" not in summary
    der = created.card.state.keys["jpki"][layout.JPKI_AUTH_KEY]
    assert private_to_der  # the only exporter is internal to the card package
    for ef_contents in created.card.state.files.values():
        for content in ef_contents.values():
            assert der[-64:] not in content


def test_crash_mid_write_leaves_old_state(made, monkeypatch: pytest.MonkeyPatch) -> None:
    created, store = made
    before = store.path(created.card_id).read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("power lost before rename")

    monkeypatch.setattr(os, "replace", crash)
    client = CardClient(created.card)
    client.select_ap("jpki")
    # the wrong PIN cannot be recorded: the card answers 6581 and does not compare (no free guess)
    resp = created.card.transmit(bytes.fromhex("00A4020C020018"))
    assert resp[-2:] == b"\x90\x00"
    assert created.card.transmit(bytes.fromhex("002000800430303030")) == b"\x65\x81"
    # after a failed write the card behaves as after a power cut: nothing selected
    assert created.card.transmit(bytes.fromhex("002000980431323334")) == b"\x6a\x88"
    client.select_ap("jpki")
    assert created.card.transmit(bytes.fromhex("002000980431323334")) == b"\x65\x81"
    monkeypatch.undo()
    assert store.path(created.card_id).read_bytes() == before
    assert not list(store.directory.glob(".*.tmp"))  # the temporary file was removed
    reopened = CardClient(store.open(created.card_id))
    reopened.select_ap("jpki")
    assert reopened.pin_tries(layout.JPKI_AUTH_PIN) == 3


def test_half_written_temp_file_is_ignored(made) -> None:
    created, store = made
    (store.directory / f".{created.card_id}.abc.tmp").write_bytes(b'{"format": 1, "card_id": "tru')
    state = store.load(created.card_id)
    assert state.lifecycle == "personalised"
    assert store.cleanup_temporaries() == 1
    assert store.ids() == [created.card_id]


def test_failed_write_during_issuer_commit_keeps_old_keys(made, monkeypatch: pytest.MonkeyPatch,
                                                          pooled_keygen) -> None:
    from jpki_remote.card.factory import TestCertificateAuthority
    from jpki_remote.card.issuer import IssuerSession

    from .conftest import MASTER_KEY

    created, store = made
    old = CardClient(created.card).read_auth_certificate()
    with IssuerSession(created.card, MASTER_KEY) as issuer:
        public = issuer.generate_key("jpki", layout.JPKI_AUTH_KEY)
        issuer.put_certificate(layout.JPKI_AUTH_KEY,
                               TestCertificateAuthority(pooled_keygen).issue(public, None, created.holder).auth)
        monkeypatch.setattr(os, "replace", lambda *_: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(Exception) as err:
            issuer.commit()
        assert getattr(err.value, "sw", None) == 0x6581
        monkeypatch.undo()
    card = store.open(created.card_id)
    assert CardClient(card).read_auth_certificate() == old
    assert card.state.pending_keys  # still pending: the server can retry the commit or discard


def test_store_rejects_bad_ids_and_duplicates(made) -> None:
    created, store = made
    with pytest.raises(ValueError, match="invalid card id"):
        store.path("../etc/passwd")
    with pytest.raises(FileExistsError):
        store.add(created.card.state)
