"""The PKCS#11 key store against SoftHSM2: keys on the token, per-thread sessions, recovery after drops."""

from __future__ import annotations

import threading

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jpki_remote.ca.keystore import KeyNotFoundError, KeyStoreError, open_keystore
from jpki_remote.ca.keystore.pkcs11 import Pkcs11KeyStore
from jpki_remote.ca.keystore.softhsm import SoftHsmToken
from jpki_remote.config import Settings

pytestmark = pytest.mark.hsm


def _verify(key: object, data: bytes, signature: bytes) -> None:
    key.public_key().verify(signature, data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[attr-defined]


@pytest.fixture
def store(softhsm: SoftHsmToken) -> Pkcs11KeyStore:
    store = Pkcs11KeyStore(softhsm.module, softhsm.label, softhsm.user_pin)
    yield store
    store.close()


def test_generate_and_sign_on_token(store: Pkcs11KeyStore, softhsm: SoftHsmToken) -> None:
    key = store.generate_rsa("ca-signature")
    _verify(key, b"tbs", key.sign_sha256_rsa(b"tbs"))
    assert store.labels() == ["ca-signature"]
    with pytest.raises(KeyStoreError, match="never overwritten"):
        store.generate_rsa("ca-signature")
    # A second store (as a second worker process would) finds the same key.
    other = Pkcs11KeyStore(softhsm.module, softhsm.label, softhsm.user_pin)
    assert other.get("ca-signature").public_key().public_numbers() == key.public_key().public_numbers()
    with pytest.raises(KeyNotFoundError):
        other.get("absent")


def test_private_key_is_not_extractable(store: Pkcs11KeyStore) -> None:
    from pkcs11 import Attribute, ObjectClass

    store.generate_rsa("k1")
    attributes = store._call(
        lambda s: s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="k1")[Attribute.EXTRACTABLE]
    )
    assert attributes is False


def test_survives_closed_session(store: Pkcs11KeyStore) -> None:
    key = store.generate_rsa("k1")
    _verify(key, b"one", key.sign_sha256_rsa(b"one"))
    store._local.session.close()  # the session drops under us (proxy restart, idle timeout)
    _verify(key, b"two", key.sign_sha256_rsa(b"two"))


def test_logs_in_again_after_a_logout(store: Pkcs11KeyStore) -> None:
    key = store.generate_rsa("k1")
    _verify(key, b"one", key.sign_sha256_rsa(b"one"))
    store._anchor.close()  # C_Logout + C_CloseSession: the application is logged out, private handles are gone
    _verify(key, b"two", key.sign_sha256_rsa(b"two"))
    assert store.get("k1").public_key().public_numbers() == key.public_key().public_numbers()


def test_survives_library_reinitialisation(store: Pkcs11KeyStore) -> None:
    key = store.generate_rsa("k1")
    _verify(key, b"one", key.sign_sha256_rsa(b"one"))
    store._lib.reinitialize()  # C_Finalize + C_Initialize: every session, handle and login is gone
    _verify(key, b"two", key.sign_sha256_rsa(b"two"))


def test_survives_finalized_library(store: Pkcs11KeyStore) -> None:
    key = store.generate_rsa("k1")
    _verify(key, b"one", key.sign_sha256_rsa(b"one"))
    store._lib.finalize()  # the library is gone entirely (HSM client restart)
    _verify(key, b"two", key.sign_sha256_rsa(b"two"))


def test_one_session_per_thread(store: Pkcs11KeyStore, caplog: pytest.LogCaptureFixture) -> None:
    """Threads sign concurrently, each in its own session; calls into the module are serialised, so SoftHSM2
    (initialised without locking by python-pkcs11) never sees two at once and nothing needs recovering."""
    key = store.generate_rsa("k1")
    sessions: dict[int, object] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for n in range(50):
                data = f"{index}:{n}".encode()
                _verify(key, data, key.sign_sha256_rsa(data))
            sessions[index] = store._local.session
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({id(s) for s in sessions.values()}) == 4
    assert not [r for r in caplog.records if "recovering" in r.getMessage()]


def test_wrong_pin_is_a_clear_error(softhsm: SoftHsmToken) -> None:
    with pytest.raises(KeyStoreError, match="login"):
        Pkcs11KeyStore(softhsm.module, softhsm.label, "000000")


def test_unknown_token_and_factory(softhsm: SoftHsmToken) -> None:
    with pytest.raises(KeyStoreError, match="no PKCS#11 token"):
        Pkcs11KeyStore(softhsm.module, "no-such-token", softhsm.user_pin)
    settings = Settings(
        keystore="pkcs11",
        pkcs11_module=softhsm.module,
        pkcs11_token_label=softhsm.label,
        pkcs11_user_pin=softhsm.user_pin,
    )
    store = open_keystore(settings)
    assert isinstance(store, Pkcs11KeyStore)
    store.close()
