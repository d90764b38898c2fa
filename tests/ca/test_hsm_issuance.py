"""The whole issuance path with the CA keys in SoftHSM2, including a session that drops in between."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.ca.holder import HolderIdentity
from jpki_remote.ca.keystore.pkcs11 import Pkcs11KeyStore
from jpki_remote.ca.keystore.softhsm import SoftHsmToken
from jpki_remote.ca.models import AuthorityKind
from jpki_remote.ca.setup import setup_authorities
from jpki_remote.config import Settings
from jpki_remote.store import Database

pytestmark = pytest.mark.hsm


def test_issue_with_hsm_keys_across_a_library_restart(
    database: Database,
    softhsm: SoftHsmToken,
    settings: Settings,
    holder: HolderIdentity,
    holder_keys: list[rsa.RSAPrivateKey],
    tmp_path: Path,
) -> None:
    store = Pkcs11KeyStore(softhsm.module, softhsm.label, softhsm.user_pin)
    try:
        setup_authorities(database, store, settings)
        ca = CertificateAuthority(database, store, settings)
        first = ca.issue_pair(
            "hsm-1", holder, holder_keys[0].public_key(), holder_keys[1].public_key(), date(2035, 1, 1)
        )
        store._lib.reinitialize()  # the HSM client restarts: sessions, handles and the login are gone
        second = ca.issue_pair(
            "hsm-2", holder, holder_keys[2].public_key(), holder_keys[3].public_key(), date(2035, 1, 1)
        )
        for pair in (first, second):
            for issued in (pair.authentication, pair.signature):
                assert issued is not None
                issued.certificate.verify_directly_issued_by(ca.authority_certificate(issued.kind))
        # openssl agrees that the chain verifies
        sig_ca = tmp_path / "ca.pem"
        sig_ca.write_bytes(ca.authority_certificate(AuthorityKind.SIGNATURE).public_bytes(Encoding.PEM))
        leaf = tmp_path / "leaf.pem"
        leaf.write_bytes(second.signature.pem)  # type: ignore[union-attr]
        result = subprocess.run(["openssl", "verify", "-CAfile", sig_ca, leaf], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert sorted(store.labels()) == [
            "ca-authentication",
            "ca-signature",
            "card-surface",
            "ocsp-authentication",
            "ocsp-signature",
        ]
        # the card-surface key made by setup signs raw DigestInfos inside the token
        surface = store.get("card-surface")
        digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + bytes(32)
        recovered = surface.public_key().recover_data_from_signature(
            surface.sign_pkcs1_v15_raw(digest_info), padding.PKCS1v15(), None
        )
        assert recovered == digest_info
    finally:
        store.close()
