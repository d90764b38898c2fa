"""PKCS#11 key store (HSM; SoftHSM2 in CI) through python-pkcs11.

Sessions: PKCS#11 sessions run one operation at a time, so every thread gets its own session (``threading.local``).
The login is per application, not per session: one *anchor* session logs in with the user PIN and every worker
session is opened without a PIN (closing a worker session therefore never logs the others out).

Serialised calls: python-pkcs11 calls ``C_Initialize(NULL)``, which under PKCS#11 v2.40 §5.4 promises the library
that it will not be called from several threads at once (SoftHSM2 then runs without its own mutexes and crashes
or fails with CKR_GENERAL_ERROR under concurrent calls). Every call into one module is therefore serialised by a
process-wide lock per module; sessions remain per thread, and parallel signing comes from more worker processes.
The lock also guarantees that a recovery (``C_Finalize``) never runs while another thread is inside the library.

Recovery: sessions die when the HSM, its proxy or the library restarts; object handles die with them. Every
operation runs through :meth:`Pkcs11KeyStore._call`, which on a PKCS#11 failure first re-opens this thread's
session (and re-logs in if the token forgot the login), and if that is not enough re-initialises the library
(``C_Finalize`` + ``C_Initialize``), finds the token again and logs in again, then retries once. Keys are looked up
by label in the new session. Errors that retrying cannot fix (wrong PIN, unknown mechanism) are raised at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pkcs11
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from jpki_remote.ca.keystore.base import CaKey, KeyNotFoundError, KeyStoreError
from jpki_remote.ca.keystore.files import check_label
from jpki_remote.ca.keystore.raw import check_payload

log = logging.getLogger(__name__)
T = TypeVar("T")

_library_locks: dict[str, threading.RLock] = {}
_library_locks_guard = threading.Lock()


def library_lock(module: str) -> threading.RLock:
    """The lock serialising every call into PKCS#11 ``module`` in this process (see the module docstring)."""
    with _library_locks_guard:
        return _library_locks.setdefault(module, threading.RLock())


# Failures that a new session or a re-initialised library cannot cure.
FATAL = (
    p11.PinIncorrect,
    p11.PinInvalid,
    p11.PinLocked,
    p11.PinExpired,
    p11.PinLenRange,
    p11.MechanismInvalid,
    p11.MechanismParamInvalid,
    p11.ArgumentsBad,
    p11.DataLenRange,
    p11.KeySizeRange,
    p11.TemplateIncomplete,
    p11.TemplateInconsistent,
    p11.MultipleObjectsReturned,
    p11.MultipleTokensReturned,
)


class Pkcs11CaKey:
    """A private key on the token, found by label; signs with ``CKM_SHA256_RSA_PKCS`` inside the HSM."""

    def __init__(self, store: Pkcs11KeyStore, label: str, public_key: rsa.RSAPublicKey) -> None:
        self.label = label
        self._store = store
        self._public_key = public_key

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    def sign_sha256_rsa(self, data: bytes) -> bytes:
        def sign(session: Any) -> bytes:
            key = self._store._private_key(session, self.label)
            return bytes(key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))

        return self._store._call(sign)

    def sign_pkcs1_v15_raw(self, payload: bytes) -> bytes:
        """``CKM_RSA_PKCS`` over ``payload`` inside the HSM (the token adds type-1 padding, no hashing)."""
        payload = check_payload(payload, self._public_key.key_size)

        def sign(session: Any) -> bytes:
            key = self._store._private_key(session, self.label)
            return bytes(key.sign(payload, mechanism=Mechanism.RSA_PKCS))

        return self._store._call(sign)

    def __repr__(self) -> str:
        return f"<Pkcs11CaKey {self.label}>"


class _ThreadSession(threading.local):
    generation = -1
    session: Any = None
    keys: dict[str, Any]

    def __init__(self) -> None:
        self.keys = {}


class Pkcs11KeyStore:
    """Key store on a PKCS#11 token: keys are generated on the token as sensitive and non-extractable."""

    def __init__(self, module: str, token_label: str, user_pin: str) -> None:
        if not user_pin:
            raise KeyStoreError("PKCS#11 key store needs a user PIN (JPKI_PKCS11_USER_PIN)")
        self.module = module
        self.token_label = token_label
        self._pin = user_pin
        self._lock = threading.RLock()
        self._local = _ThreadSession()
        self._sessions: list[Any] = []  # every session we opened, to close them on close()
        self._public_keys: dict[str, rsa.RSAPublicKey] = {}
        self._generation = 0
        self._anchor: Any = None
        self._library_lock = library_lock(module)
        with self._library_lock:
            try:
                self._lib = pkcs11.lib(module)  # a per-process singleton inside python-pkcs11
            except p11.PKCS11Error as exc:
                raise KeyStoreError(f"cannot load PKCS#11 module {module}: {exc}") from exc
            with self._lock:
                try:
                    self._connect(reinitialize=False)
                except p11.PKCS11Error as exc:
                    raise KeyStoreError(f"cannot open token {token_label!r}: {type(exc).__name__} {exc}") from exc

    # -- connection management ----------------------------------------------------------------------------------
    def _connect(self, *, reinitialize: bool) -> None:
        """(Re)find the token and log in on a fresh anchor session. Caller holds the lock."""
        if reinitialize:
            with contextlib.suppress(p11.PKCS11Error):
                self._lib.finalize()
            self._lib.initialize()
            self._sessions.clear()  # C_Finalize closed them all
        elif not self._lib.initialized:
            self._lib.initialize()
        try:
            token = self._lib.get_token(token_label=self.token_label)
        except p11.PKCS11Error as exc:
            if reinitialize:
                if isinstance(exc, p11.NoSuchToken):
                    raise KeyStoreError(f"no PKCS#11 token labelled {self.token_label!r} in {self.module}") from None
                raise KeyStoreError(f"PKCS#11 module {self.module} unusable: {type(exc).__name__}") from exc
            # A token created after C_Initialize is only seen after a re-initialisation (SoftHSM2 behaviour), and a
            # library whose token store went away answers CKR_GENERAL_ERROR until it is re-initialised.
            self._connect(reinitialize=True)
            return
        self._token = token
        try:
            self._anchor = token.open(rw=True, user_pin=self._pin)
            self._sessions.append(self._anchor)
        except p11.UserAlreadyLoggedIn:
            self._anchor = None  # the application is logged in already (the login outlived our anchor)
        except (p11.PinIncorrect, p11.PinLocked, p11.PinInvalid, p11.PinLenRange) as exc:
            raise KeyStoreError(f"PKCS#11 login to token {self.token_label!r} failed: {type(exc).__name__}") from exc
        self._generation += 1

    def _thread_session(self) -> Any:
        local = self._local
        if local.session is None or local.generation != self._generation:
            with self._lock:
                local.session = self._token.open(rw=True)
                self._sessions.append(local.session)
                local.generation = self._generation
                local.keys = {}
        return local.session

    def _drop_thread_session(self) -> None:
        local = self._local
        if local.session is not None:
            with contextlib.suppress(p11.PKCS11Error):
                local.session.close()
            with self._lock:
                if local.session in self._sessions:
                    self._sessions.remove(local.session)
        local.session = None
        local.keys = {}

    def _call(self, operation: Callable[[Any], T]) -> T:
        """Run ``operation(session)`` in this thread's session, recovering from dead sessions and libraries.

        Escalation: 1. a new session for this thread; 2. log in again (the token forgot the login — the only way to
        tell a missing key from a logged-out token is that logging in answers "already logged in"); 3. re-initialise
        the library. Each step retries the operation once.
        """
        with self._library_lock:
            return self._call_serialised(operation)

    def _call_serialised(self, operation: Callable[[Any], T]) -> T:
        steps = 4
        for attempt in range(steps):
            generation = self._generation
            try:
                return operation(self._thread_session())
            except FATAL as exc:
                raise KeyStoreError(f"PKCS#11 operation failed: {type(exc).__name__}") from exc
            except p11.PKCS11Error as exc:
                if attempt == steps - 1:
                    raise KeyStoreError(f"PKCS#11 token {self.token_label!r} unusable: {type(exc).__name__}") from exc
                if isinstance(exc, p11.NoSuchKey | p11.UserNotLoggedIn):
                    with self._lock:
                        outcome = self._login()
                    if outcome == "already" and isinstance(exc, p11.NoSuchKey):
                        # logged in and still not found: the key does not exist
                        raise KeyNotFoundError(f"no such key on token {self.token_label!r}") from exc
                    if outcome != "failed":
                        continue
                log.warning("PKCS#11 %s %s; recovering (step %d)", type(exc).__name__, exc, attempt + 1)
                self._drop_thread_session()
                if attempt == 0:
                    continue  # a fresh session is often enough (session closed, handle invalid)
                with self._lock:
                    if self._generation == generation:  # nobody else recovered meanwhile
                        self._connect(reinitialize=True)
        raise AssertionError("unreachable")

    def _login(self) -> str:
        """Log in again on a new anchor session: "done", "already" (was logged in) or "failed". Holds the lock."""
        try:
            anchor = self._token.open(rw=True, user_pin=self._pin)
        except p11.UserAlreadyLoggedIn:
            return "already"
        except (p11.PinIncorrect, p11.PinLocked, p11.PinInvalid, p11.PinLenRange) as exc:
            raise KeyStoreError(f"PKCS#11 login to token {self.token_label!r} failed: {type(exc).__name__}") from exc
        except p11.PKCS11Error:
            return "failed"
        self._anchor = anchor
        self._sessions.append(anchor)
        return "done"

    # -- keys -----------------------------------------------------------------------------------------------------
    def _private_key(self, session: Any, label: str) -> Any:
        keys = self._local.keys
        key = keys.get(label)
        if key is None:
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.RSA, label=label)
            keys[label] = key
        return key

    def _read_public_key(self, session: Any, label: str) -> rsa.RSAPublicKey:
        key = session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.RSA, label=label)
        modulus = int.from_bytes(key[Attribute.MODULUS], "big")
        exponent = int.from_bytes(key[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()

    def generate_rsa(self, label: str, bits: int = 2048) -> CaKey:
        check_label(label)
        if label in self.labels():
            raise KeyStoreError(f"key {label!r} already exists on token {self.token_label!r}; never overwritten")

        def generate(session: Any) -> rsa.RSAPublicKey:
            key_id = label.encode()
            session.generate_keypair(
                KeyType.RSA,
                bits,
                id=key_id,
                label=label,
                store=True,
                public_template={Attribute.VERIFY: True, Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"},
                private_template={
                    Attribute.SIGN: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                },
            )
            return self._read_public_key(session, label)

        with self._library_lock, self._lock:  # check-then-create, atomic within this process
            if label in self.labels():
                raise KeyStoreError(f"key {label!r} already exists on token {self.token_label!r}; never overwritten")
            public_key = self._call(generate)
        self._public_keys[label] = public_key
        return Pkcs11CaKey(self, label, public_key)

    def get(self, label: str) -> CaKey:
        public_key = self._public_keys.get(label)
        if public_key is None:
            try:
                public_key = self._call(lambda session: self._read_public_key(session, label))
            except KeyNotFoundError:
                raise KeyNotFoundError(f"no key {label!r} on token {self.token_label!r}") from None
            self._public_keys[label] = public_key
        return Pkcs11CaKey(self, label, public_key)

    def labels(self) -> list[str]:
        def list_labels(session: Any) -> list[str]:
            found = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
            return sorted({obj.label for obj in found})

        return self._call(list_labels)

    def close(self) -> None:
        with self._library_lock, self._lock:
            for session in reversed(self._sessions):
                with contextlib.suppress(p11.PKCS11Error):
                    session.close()
            self._sessions.clear()
            self._anchor = None
            self._generation += 1

    def __repr__(self) -> str:
        return f"<Pkcs11KeyStore {self.token_label} in {self.module}>"
