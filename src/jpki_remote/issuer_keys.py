"""The issuer's SCP03 master keys: every card's static secure-messaging keys are diversified from one of them.

A neutral module (no package above ``config`` is imported) so that both the card tooling (``jpki-remote card new``
manufactures cards under the master key) and the server (``jpki_remote.procedures`` opens issuer sessions with it)
use the same keys without importing each other.

:class:`FileIssuerKeys` keeps one AES key per key version in ``<directory>/issuer-master-<vv>.key`` (``vv``: the key
version in two lower-case hex digits), as 64 (AES-256) or 32 (AES-128) hex characters, mode 0600 in a 0700
directory — the on-disk format data directories already have (``<data_dir>/issuer-keys``). A key file is created
complete or not at all (private temp file, fsync, hard link into place), so a concurrent reader never sees a half
written key and two processes creating the same version agree on one key. A file readable by group or others is
refused. The file store is for development and tests.

:class:`Pkcs11IssuerKeys` (production; security finding S-6) keeps each master key as a non-extractable, sensitive AES
key object on a PKCS#11 token (``jpki-issuer-master-<vv>``; SoftHSM2 in tests). A card's static keys are derived
*inside* the HSM: GlobalPlatformPro's KDF3 diversification is AES-CMAC under the master key
(:func:`jpki_remote.card.scp03.diversify_with`), computed with ``C_Sign(CKM_AES_CMAC)`` on the key object, so the
master key never exists in this process — only the static keys of the card being served, for its session. Sessions,
re-login and recovery after a dropped session or library come from the CA's
:class:`jpki_remote.ca.keystore.pkcs11.Pkcs11KeyStore` (its process-wide lock also serialises every call: python-
pkcs11 initialises the library without OS locking).

Callers use :meth:`IssuerKeys.card_keys` (both stores) and hand the result to
:class:`jpki_remote.card.issuer.IssuerSession` (or the store itself: it derives for the KDD the card announces).
``master_key()`` exists only on the file store. Pick the store with ``issuer_keystore = "file" | "pkcs11"`` through
:func:`issuer_keys_from_settings`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jpki_remote.card.scp03 import CardStaticKeys, diversify, diversify_with

DIRECTORY_NAME = "issuer-keys"
KEY_SIZES = (16, 32)
PKCS11_LABEL_PREFIX = "jpki-issuer-master"
_NAME = re.compile(r"issuer-master-([0-9a-f]{2})\.key")


class IssuerKeyError(ValueError):
    """A master key file is unusable (wrong content or permissions); the message says which file and why."""


class IssuerKeys(Protocol):
    """Where the issuer's SCP03 master keys live."""

    def card_keys(self, key_version: int, kdd: bytes) -> CardStaticKeys:
        """The static keys of the card with diversification data ``kdd`` under master key ``key_version``."""
        ...

    def create(self, key_version: int) -> object:
        """Create the master key of ``key_version`` (``FileExistsError`` if it exists)."""
        ...


def _check_kdd(kdd: bytes) -> bytes:
    if not isinstance(kdd, bytes | bytearray) or not 1 <= len(kdd) <= 32:
        raise ValueError("key diversification data is 1–32 bytes (a card's KDD is 10)")
    return bytes(kdd)


def _check_version(key_version: int) -> int:
    if not isinstance(key_version, int) or not 0 <= key_version <= 0xFF:
        raise ValueError(f"an issuer key version is 0–255, got {key_version!r}")
    return key_version


@dataclass
class FileIssuerKeys:
    """Master keys as 0600 files in ``directory``. ``create_missing``: :meth:`master_key` creates a key version
    that does not exist yet (the first use of a fresh data directory) instead of raising ``FileNotFoundError``."""

    directory: Path
    create_missing: bool = True

    def path(self, key_version: int) -> Path:
        return Path(self.directory) / f"issuer-master-{_check_version(key_version):02x}.key"

    def versions(self) -> list[int]:
        """The key versions present."""
        if not Path(self.directory).is_dir():
            return []
        found = (_NAME.fullmatch(p.name) for p in Path(self.directory).iterdir())
        return sorted(int(m.group(1), 16) for m in found if m)

    def master_key(self, key_version: int) -> bytes:
        path = self.path(key_version)
        try:
            return self._read(path)
        except FileNotFoundError:
            if not self.create_missing:
                raise FileNotFoundError(f"no issuer master key version {key_version} ({path})") from None
        try:
            return self.create(key_version)
        except FileExistsError:  # another process created it first: use that one
            return self._read(path)

    def card_keys(self, key_version: int, kdd: bytes) -> CardStaticKeys:
        kdd = _check_kdd(kdd)
        return CardStaticKeys.from_dict(diversify(self.master_key(key_version), kdd), kdd, key_version)

    def create(self, key_version: int, *, size: int = 32) -> bytes:
        if size not in KEY_SIZES:
            raise ValueError("an issuer master key is an AES-128 or AES-256 key (16 or 32 bytes)")
        path = self.path(key_version)
        directory = Path(self.directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(size)
        fd, tmp = tempfile.mkstemp(prefix=".issuer-master-", suffix=".tmp", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(key.hex())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)  # atomic, never over an existing key
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(directory)
        return key

    @staticmethod
    def _read(path: Path) -> bytes:
        with open(path, encoding="ascii", errors="replace") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise IssuerKeyError(f"{path} is accessible to group or others (mode {stat.S_IMODE(mode):04o}); "
                                     f"run chmod 600 on it")
            text = handle.read(200).strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) not in KEY_SIZES:
            raise IssuerKeyError(f"{path} does not hold an AES-128/256 key as hex")
        return key


class Pkcs11IssuerKeys:
    """Master keys as non-extractable AES key objects on a PKCS#11 token; card keys derived inside the HSM.

    ``store``: an open :class:`~jpki_remote.ca.keystore.pkcs11.Pkcs11KeyStore` to share (one login and session set
    per process with the CA keys), else one is opened for ``module``/``token_label``/``user_pin``.
    ``create_missing``: :meth:`card_keys` creates a missing key version (development only; a production token gets
    its keys by :meth:`create` or :meth:`import_key` at set-up, so a wrong token fails instead of minting a master).
    """

    def __init__(
        self,
        module: str = "",
        token_label: str = "",
        user_pin: str = "",
        *,
        store: Any = None,
        label_prefix: str = PKCS11_LABEL_PREFIX,
        create_missing: bool = False,
    ) -> None:
        from jpki_remote.ca.keystore.base import KeyStoreError
        from jpki_remote.ca.keystore.pkcs11 import Pkcs11KeyStore

        if store is None:
            try:
                store = Pkcs11KeyStore(module, token_label, user_pin)
            except KeyStoreError as exc:
                raise IssuerKeyError(f"issuer key token unusable: {exc}") from exc
        self._store = store
        self.label_prefix = label_prefix
        self.create_missing = create_missing

    def label(self, key_version: int) -> str:
        return f"{self.label_prefix}-{_check_version(key_version):02x}"

    def _run(self, operation: Any) -> Any:
        """``operation(session)`` through the key store's serialised, self-recovering session handling."""
        from jpki_remote.ca.keystore.base import KeyNotFoundError, KeyStoreError

        try:
            return self._store._call(operation)
        except KeyNotFoundError as exc:
            raise FileNotFoundError(f"no issuer master key on token {self._store.token_label!r}") from exc
        except KeyStoreError as exc:
            raise IssuerKeyError(f"issuer key token: {exc}") from exc

    def _key(self, session: Any, key_version: int) -> Any:
        from pkcs11 import KeyType, ObjectClass

        return session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES,
                               label=self.label(key_version))

    def card_keys(self, key_version: int, kdd: bytes) -> CardStaticKeys:
        from pkcs11 import Attribute, Mechanism

        kdd = _check_kdd(kdd)

        def derive(session: Any) -> dict[str, bytes]:
            master = self._key(session, key_version)
            size = int(master[Attribute.VALUE_LEN])
            return diversify_with(lambda data: bytes(master.sign(data, mechanism=Mechanism.AES_CMAC)), kdd, size)

        try:
            keys = self._run(derive)
        except FileNotFoundError:
            if not self.create_missing:
                raise FileNotFoundError(f"no issuer master key version {key_version} "
                                        f"({self.label(key_version)}) on the token") from None
            with contextlib.suppress(FileExistsError):  # created meanwhile by another process
                self.create(key_version)
            keys = self._run(derive)
        return CardStaticKeys.from_dict(keys, kdd, key_version)

    def versions(self) -> list[int]:
        from pkcs11 import Attribute, KeyType, ObjectClass

        def labels(session: Any) -> list[str]:
            found = session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES})
            return [obj.label for obj in found]

        prefix = self.label_prefix + "-"
        names = [n for n in self._run(labels) if n.startswith(prefix) and len(n) == len(prefix) + 2]
        return sorted({int(n[-2:], 16) for n in names if all(c in "0123456789abcdef" for c in n[-2:])})

    def _template(self, key_version: int) -> dict[Any, Any]:
        from pkcs11 import Attribute

        return {
            Attribute.LABEL: self.label(key_version),
            Attribute.ID: self.label(key_version).encode(),
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,  # C_Sign(CKM_AES_CMAC): the only use
            Attribute.VERIFY: False,
            Attribute.ENCRYPT: False,
            Attribute.DECRYPT: False,
            Attribute.WRAP: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }

    def create(self, key_version: int, *, size: int = 32) -> None:
        """Generate the master key of ``key_version`` inside the HSM (``FileExistsError`` if it exists)."""
        from pkcs11 import Attribute, KeyType, MechanismFlag

        if size not in KEY_SIZES:
            raise ValueError("an issuer master key is an AES-128 or AES-256 key (16 or 32 bytes)")
        template = self._template(key_version)

        def generate(session: Any) -> None:
            session.generate_key(KeyType.AES, size * 8, label=template[Attribute.LABEL], id=template[Attribute.ID],
                                 store=True, capabilities=MechanismFlag.SIGN, template=template)

        self._create(key_version, generate)

    def import_key(self, key_version: int, key: bytes) -> None:
        """Move an existing master key (e.g. a development file's) into the HSM, as non-extractable. The one moment
        the value passes through this process; delete the file afterwards."""
        from pkcs11 import Attribute, KeyType, ObjectClass

        if len(key) not in KEY_SIZES:
            raise ValueError("an issuer master key is an AES-128 or AES-256 key (16 or 32 bytes)")
        template = {**self._template(key_version), Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.KEY_TYPE: KeyType.AES, Attribute.VALUE: bytes(key)}
        self._create(key_version, lambda session: session.create_object(template))

    def _create(self, key_version: int, make: Any) -> None:
        store = self._store
        with store._library_lock, store._lock:  # check-then-create, atomic within this process
            if key_version in self.versions():
                raise FileExistsError(f"issuer master key {self.label(key_version)} exists; never overwritten")
            self._run(make)

    def master_key(self, key_version: int) -> bytes:
        raise IssuerKeyError("the issuer master key never leaves the HSM: use card_keys(version, kdd)")

    def close(self) -> None:
        self._store.close()

    def __repr__(self) -> str:
        return f"<Pkcs11IssuerKeys {self.label_prefix} on {self._store!r}>"


def issuer_keys_from_settings(settings: Any) -> FileIssuerKeys | Pkcs11IssuerKeys:
    """The deployment's issuer master keys: ``issuer_keystore = "file"`` — ``<data_dir>/issuer-keys`` (shared by
    ``card new`` and the server) — or ``"pkcs11"`` — the CA's PKCS#11 token (``pkcs11_module``,
    ``pkcs11_token_label``, ``pkcs11_user_pin``)."""
    kind = str(getattr(settings, "issuer_keystore", "file") or "file").strip().lower()
    if kind == "file":
        return FileIssuerKeys(Path(settings.data_dir) / DIRECTORY_NAME)
    if kind == "pkcs11":
        return Pkcs11IssuerKeys(settings.pkcs11_module, settings.pkcs11_token_label, settings.pkcs11_user_pin)
    raise IssuerKeyError(f"unknown issuer key store {kind!r}; use 'file' or 'pkcs11'")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
