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
