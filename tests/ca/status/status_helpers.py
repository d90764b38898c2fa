"""Helpers shared by the status tests (imported as a plain module: tests/ca has no packages)."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jpki_remote.ca.authority import CertificateAuthority, IssuedCertificate
from jpki_remote.ca.holder import HolderIdentity
from jpki_remote.ca.models import AuthorityKind
from jpki_remote.ca.status.service import StatusService
from jpki_remote.config import Settings

CARD_EXPIRY = date(2035, 6, 10)


@dataclass
class StatusEnv:
    ca: CertificateAuthority
    service: StatusService
    settings: Settings
    holder: HolderIdentity
    keys: list[rsa.RSAPrivateKey]
    directory: Path

    def issue(
        self, kind: AuthorityKind = AuthorityKind.AUTHENTICATION, *, shard: int | None = None
    ) -> IssuedCertificate:
        """Issue a certificate through the CA (optionally retrying until it lands in ``shard``)."""
        for _ in range(200):
            issued = self.ca.issue(
                kind,
                secrets.token_hex(8),
                self.holder,
                self.keys[secrets.randbelow(len(self.keys))].public_key(),
                CARD_EXPIRY,
            )
            if shard is None or issued.shard == shard:
                return issued
        raise AssertionError(f"no certificate landed in shard {shard}")

    def ca_pem(self, kind: AuthorityKind = AuthorityKind.AUTHENTICATION) -> Path:
        path = self.directory / f"ca-{kind.value}.pem"
        if not path.exists():
            path.write_bytes(self.ca.authority_certificate(kind).public_bytes(serialization.Encoding.PEM))
        return path

    def pem(self, issued: IssuedCertificate) -> Path:
        path = self.directory / f"ee-{issued.serial:x}.pem"
        path.write_bytes(issued.pem)
        return path

    def write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        return path


def run_openssl(*args: str | Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False)
