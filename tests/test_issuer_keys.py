"""The issuer's SCP03 master keys on disk: today's format (hex, 0600) read and written unchanged, exclusive and atomic
creation (also across processes), clear errors for unusable files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from jpki_remote.config import Settings
from jpki_remote.issuer_keys import FileIssuerKeys, IssuerKeyError, issuer_keys_from_settings


def test_existing_key_files_are_read_unchanged(tmp_path: Path) -> None:
    directory = tmp_path / "issuer-keys"
    directory.mkdir(mode=0o700)
    key = bytes(range(32))
    path = directory / "issuer-master-00.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())  # what data directories hold today
    assert FileIssuerKeys(directory).master_key(0) == key
    aes128 = directory / "issuer-master-2a.key"
    fd = os.open(aes128, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(bytes(16).hex() + "\n")
    assert FileIssuerKeys(directory).master_key(0x2A) == bytes(16)
    assert FileIssuerKeys(directory).versions() == [0x00, 0x2A]


def test_created_key_format_and_permissions(tmp_path: Path) -> None:
    keys = FileIssuerKeys(tmp_path / "issuer-keys", create_missing=False)
    with pytest.raises(FileNotFoundError, match="no issuer master key version 1"):
        keys.master_key(1)
    key = keys.create(1)
    path = tmp_path / "issuer-keys" / "issuer-master-01.key"
    assert len(key) == 32 and path.read_text() == key.hex()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "issuer-keys").stat().st_mode) == 0o700
    assert keys.master_key(1) == key
    with pytest.raises(FileExistsError):
        keys.create(1)
    assert keys.master_key(1) == key  # the existing key is never replaced
    assert sorted(p.name for p in (tmp_path / "issuer-keys").iterdir()) == ["issuer-master-01.key"]  # no temp left
    assert len(keys.create(2, size=16)) == 16


def test_first_use_creates_the_key_once(tmp_path: Path) -> None:
    keys = FileIssuerKeys(tmp_path / "k")
    first = keys.master_key(0)
    assert FileIssuerKeys(tmp_path / "k").master_key(0) == first
    assert FileIssuerKeys(tmp_path / "k").master_key(3) != first


def test_concurrent_first_use_in_several_processes_agrees_on_one_key(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from jpki_remote.issuer_keys import FileIssuerKeys; "
            "print(FileIssuerKeys(Path(sys.argv[1])).master_key(0).hex())")
    processes = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "k")], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=60) for p in processes]
    assert all(p.returncode == 0 for p in processes), results
    assert len({out.strip() for out, _err in results}) == 1
    assert FileIssuerKeys(tmp_path / "k").master_key(0).hex() == results[0][0].strip()


@pytest.mark.parametrize("content", ["", "zz" * 32, "00" * 20, "00" * 64])
def test_unusable_content_is_a_clear_error(tmp_path: Path, content: str) -> None:
    keys = FileIssuerKeys(tmp_path)
    path = keys.path(0)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    with pytest.raises(IssuerKeyError, match="does not hold an AES-128/256 key"):
        keys.master_key(0)
    assert path.read_text() == content  # not replaced by a new key


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    keys = FileIssuerKeys(tmp_path)
    keys.create(0)
    keys.path(0).chmod(0o644)
    with pytest.raises(IssuerKeyError, match="chmod 600"):
        keys.master_key(0)


def test_versions_out_of_range(tmp_path: Path) -> None:
    for bad in (-1, 256):
        with pytest.raises(ValueError, match="0–255"):
            FileIssuerKeys(tmp_path).master_key(bad)


def test_from_settings_uses_the_data_directory(tmp_path: Path) -> None:
    keys = issuer_keys_from_settings(Settings(data_dir=tmp_path))
    assert keys.path(0) == tmp_path / "issuer-keys" / "issuer-master-00.key"


def test_same_format_as_the_procedures_adapter(tmp_path: Path) -> None:
    """The server's adapter (procedures.ports.FileIssuerKeys) and this module read each other's files."""
    from jpki_remote.procedures import ports

    written_by_server = ports.FileIssuerKeys(tmp_path).master_key(5)
    assert FileIssuerKeys(tmp_path).master_key(5) == written_by_server
    ours = FileIssuerKeys(tmp_path).create(6)
    assert ports.FileIssuerKeys(tmp_path).master_key(6) == ours


# ---- PKCS#11 (security finding S-6): the master key as a non-extractable AES key in the HSM ------------------------
GPPRO_MASTER = bytes.fromhex("8C72C72CF908411653018807950D82FBAD947562F0828A0B10B8B9606ABF3BCD")
GPPRO_KDD = bytes.fromhex("D9B1DE5D0362DEDCE4FB")
GPPRO_ENC = bytes.fromhex("9AAC5D0B3601F89438A0D9D0B6B256CFB47E6462DFA5228D3420C4AC7C224781")


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from jpki_remote.ca.keystore.softhsm import create_softhsm_token, softhsm_available

    if not softhsm_available():
        pytest.skip("SoftHSM2 is not installed")
    created = create_softhsm_token(tmp_path / "hsm")
    monkeypatch.setenv("SOFTHSM2_CONF", str(created.conf))
    return created


@pytest.fixture
def hsm_keys(token):
    from jpki_remote.issuer_keys import Pkcs11IssuerKeys

    keys = Pkcs11IssuerKeys(token.module, token.label, token.user_pin)
    yield keys
    keys.close()


def _attributes(keys, version: int) -> dict[str, object]:
    from pkcs11 import Attribute

    names = ("SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE", "SIGN", "ENCRYPT", "DECRYPT", "WRAP",
             "DERIVE", "TOKEN", "PRIVATE")
    return keys._run(lambda s: {n: keys._key(s, version)[getattr(Attribute, n)] for n in names})


@pytest.mark.hsm
def test_hsm_and_file_derive_identical_card_keys(hsm_keys, tmp_path: Path) -> None:
    """Known answer (GlobalPlatformPro's KDF3 vector) through C_Sign(CKM_AES_CMAC), and the same keys as the file
    store for random KDDs, AES-256 and AES-128."""
    import secrets

    hsm_keys.import_key(0, GPPRO_MASTER)
    derived = hsm_keys.card_keys(0, GPPRO_KDD)
    assert derived.enc == GPPRO_ENC and derived.kdd == GPPRO_KDD and derived.key_version == 0
    files = FileIssuerKeys(tmp_path / "files", create_missing=False)
    directory = tmp_path / "files"
    directory.mkdir(mode=0o700)
    for version, master in ((0, GPPRO_MASTER), (7, secrets.token_bytes(16))):
        (directory / f"issuer-master-{version:02x}.key").write_text(master.hex())
        os.chmod(directory / f"issuer-master-{version:02x}.key", 0o600)
        if version:
            hsm_keys.import_key(version, master)
        for _ in range(3):
            kdd = secrets.token_bytes(10)
            ours, theirs = hsm_keys.card_keys(version, kdd), files.card_keys(version, kdd)
            assert ours.as_dict() == theirs.as_dict() and len(ours.enc) == len(master)
    assert hsm_keys.versions() == [0, 7]


@pytest.mark.hsm
def test_master_key_object_is_sensitive_and_never_extractable(hsm_keys) -> None:
    from pkcs11 import Attribute
    from pkcs11.exceptions import AttributeSensitive

    hsm_keys.create(1)
    hsm_keys.import_key(2, GPPRO_MASTER)
    for version in (1, 2):
        attributes = _attributes(hsm_keys, version)
        assert attributes["SENSITIVE"] is True and attributes["EXTRACTABLE"] is False, attributes
        assert attributes["SIGN"] is True and attributes["TOKEN"] is True and attributes["PRIVATE"] is True
        assert not any(attributes[n] for n in ("ENCRYPT", "DECRYPT", "WRAP", "DERIVE")), attributes

        def read_value(session, v=version) -> str:
            try:
                hsm_keys._key(session, v)[Attribute.VALUE]
            except AttributeSensitive:
                return "refused"
            return "read"

        assert hsm_keys._run(read_value) == "refused"  # C_GetAttributeValue(CKA_VALUE) is refused by the HSM
    generated = _attributes(hsm_keys, 1)
    assert generated["NEVER_EXTRACTABLE"] is True and generated["ALWAYS_SENSITIVE"] is True  # born in the HSM
    with pytest.raises(IssuerKeyError, match="never leaves the HSM"):
        hsm_keys.master_key(1)
    with pytest.raises(FileExistsError):
        hsm_keys.create(1)
    with pytest.raises(FileExistsError):
        hsm_keys.import_key(2, GPPRO_MASTER)
    with pytest.raises(FileNotFoundError, match="version 3"):
        hsm_keys.card_keys(3, GPPRO_KDD)
    with pytest.raises(ValueError):
        hsm_keys.card_keys(1, b"")


@pytest.mark.hsm
def test_issuer_session_with_a_virtual_card_through_the_hsm(hsm_keys) -> None:
    from jpki_remote.card import layout
    from jpki_remote.card.client import CardClient
    from jpki_remote.card.issuer import IssuerSession
    from jpki_remote.card.manufacture import manufacture
    from jpki_remote.card.state import PinRecord
    from jpki_remote.card.virtual import VirtualCard

    hsm_keys.create(0)
    state = manufacture(hsm_keys)  # the card's static keys come out of the HSM; the master stays in it
    state.pins["text"][layout.TEXT_PIN] = PinRecord(b"1111", 3, 0)  # blocked
    card = VirtualCard(state)
    with IssuerSession(card, hsm_keys) as issuer:  # derives for the KDD the card announces
        issuer.reset_holder_pin("text", "2468")
    with IssuerSession(card, hsm_keys.card_keys(0, state.kdd)) as issuer:  # precomputed for the registered card
        assert issuer.status().pin("text", layout.TEXT_PIN).tries_left == 3  # type: ignore[union-attr]
    client = CardClient(card)
    client.select_ap("text")
    client.verify(layout.TEXT_PIN, "2468")


@pytest.mark.hsm
def test_survives_a_dropped_session_and_a_reinitialised_library(hsm_keys) -> None:
    hsm_keys.import_key(0, GPPRO_MASTER)
    assert hsm_keys.card_keys(0, GPPRO_KDD).enc == GPPRO_ENC
    store = hsm_keys._store
    store._local.session.close()  # the session drops under us (HSM proxy restart, idle timeout)
    assert hsm_keys.card_keys(0, GPPRO_KDD).enc == GPPRO_ENC
    with store._library_lock:  # the whole library restarts: every session and the login are gone
        store._lib.finalize()
        store._lib.initialize()
    assert hsm_keys.card_keys(0, GPPRO_KDD).enc == GPPRO_ENC


@pytest.mark.hsm
def test_concurrent_derivations_are_serialised_and_agree(hsm_keys) -> None:
    import secrets
    import threading

    hsm_keys.create(0)
    kdds = [secrets.token_bytes(10) for _ in range(8)]
    expected = {kdd: hsm_keys.card_keys(0, kdd).as_dict() for kdd in kdds}
    results: list[bool] = []

    def work() -> None:
        for kdd in kdds:
            results.append(hsm_keys.card_keys(0, kdd).as_dict() == expected[kdd])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 32 and all(results)


@pytest.mark.hsm
def test_from_settings_selects_the_store(token, tmp_path: Path) -> None:
    from jpki_remote.issuer_keys import Pkcs11IssuerKeys

    keys = issuer_keys_from_settings(Settings(data_dir=tmp_path, issuer_keystore="pkcs11", pkcs11_module=token.module,
                                              pkcs11_token_label=token.label, pkcs11_user_pin=token.user_pin))
    assert isinstance(keys, Pkcs11IssuerKeys)
    with pytest.raises(FileNotFoundError):
        keys.card_keys(0, GPPRO_KDD)  # a production token never mints a master key by itself
    keys.close()
    with pytest.raises(IssuerKeyError, match="unknown issuer key store"):
        issuer_keys_from_settings(Settings(data_dir=tmp_path, issuer_keystore="vault"))
    with pytest.raises(IssuerKeyError):
        issuer_keys_from_settings(Settings(data_dir=tmp_path, issuer_keystore="pkcs11", pkcs11_module=token.module,
                                           pkcs11_token_label="absent", pkcs11_user_pin=token.user_pin))
    assert isinstance(issuer_keys_from_settings(Settings(data_dir=tmp_path)), FileIssuerKeys)
    assert not any(tmp_path.rglob("issuer-master-*"))  # the HSM path never wrote a key file


@pytest.mark.hsm
def test_card_tooling_personalises_a_card_through_the_hsm(token, tmp_path: Path) -> None:
    """`card new` with issuer_keystore=pkcs11: the factory manufactures and personalises over secure messaging with
    keys derived in the HSM; no key file anywhere."""
    from tests.conftest import shared_dir

    from jpki_remote.card.commands import CommandError, issuer_master_key
    from jpki_remote.card.factory import CardPins, create_card, test_holder
    from jpki_remote.card.issuer import IssuerSession
    from jpki_remote.card.store import CardStore
    from jpki_remote.issuer_keys import Pkcs11IssuerKeys

    settings = Settings(data_dir=tmp_path / "data", issuer_keystore="pkcs11", pkcs11_module=token.module,
                        pkcs11_token_label=token.label, pkcs11_user_pin=token.user_pin)
    with pytest.raises(CommandError, match="not usable"):
        issuer_master_key(settings)  # version 0 not set up on the token: refused before any card work
    Pkcs11IssuerKeys(token.module, token.label, token.user_pin).create(0)
    keys = issuer_master_key(settings)
    assert isinstance(keys, Pkcs11IssuerKeys)
    photo = (shared_dir() / "data" / "faces" / "biden" / "1.jpg").read_bytes()
    made = create_card(test_holder(photo), issuer_master_key=keys, store=CardStore(tmp_path / "cards"),
                       pins=CardPins(auth="1234", sign="ABC123", text="2345", juki="3456"))
    with IssuerSession(made.card, keys.card_keys(0, made.card.state.kdd)) as issuer:
        assert issuer.status().lifecycle == "personalised"
    assert not any(p.name.startswith("issuer-master") for p in tmp_path.rglob("*"))
