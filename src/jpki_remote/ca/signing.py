"""Build → lint a throwaway-signed copy → sign the identical TBS through the key store.

pyca/cryptography only builds signed structures, so the builder is signed once with a throwaway RSA key (as
Boulder does before its real signature). That TBS already names the real issuer, carries the real AKI and says
sha256WithRSAEncryption — the throwaway key appears nowhere in it, and its size does not change a byte of it — so
the throwaway key is RSA-1024, the cheapest pyca accepts (a fifth of an RSA-2048 signature), and its signature is
discarded. The lint copy is the TBS assembled with a placeholder signature as long as the CA key's, i.e. the final
certificate byte for byte except for the signature bits (pkilint does not verify signatures; a test checks that
the copy and the final certificate get identical findings). After linting, the *same* TBS bytes are signed by the
CA key through :class:`~jpki_remote.ca.keystore.CaKey` and assembled with :func:`der.signed_structure`. The result
is checked against the CA public key before it is returned.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from jpki_remote.ca.der import signed_structure
from jpki_remote.ca.errors import LintFailedError
from jpki_remote.ca.keystore.base import CaKey, KeyStoreError
from jpki_remote.ca.lint import LintReport, lint_crl

THROWAWAY_KEY_BITS = 1024  # never signs anything that leaves this module
_throwaway: rsa.RSAPrivateKey | None = None
_throwaway_lock = threading.Lock()


def throwaway_key() -> rsa.RSAPrivateKey:
    """An RSA key of this process, used only to get pyca to produce TBS bytes; its signatures are discarded."""
    global _throwaway
    with _throwaway_lock:
        if _throwaway is None:
            _throwaway = rsa.generate_private_key(public_exponent=65537, key_size=THROWAWAY_KEY_BITS)
        return _throwaway


@dataclass(frozen=True)
class Prepared:
    """A to-be-signed certificate and the throwaway-signed copy to lint."""

    tbs: bytes
    lint_copy: bytes  # DER certificate, identical to the final one except for the signature


def signature_length(issuer: x509.Certificate) -> int:
    """Bytes in a signature by the key of ``issuer`` (an RSA CA)."""
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyStoreError(f"CA keys are RSA, not {type(key).__name__}")
    return (key.key_size + 7) // 8


def prepare_certificate(builder: x509.CertificateBuilder, signature_length: int = 256) -> Prepared:
    """The TBS of ``builder`` and its lint copy with a placeholder signature of ``signature_length`` bytes (the
    CA key's modulus length: 256 for RSA-2048)."""
    tbs = builder.sign(throwaway_key(), hashes.SHA256()).tbs_certificate_bytes
    return Prepared(tbs, signed_structure(tbs, bytes(signature_length)))


def sign_tbs(tbs: bytes, key: CaKey) -> bytes:
    """Sign ``tbs`` through the key store, assemble the DER and verify the signature with the CA public key."""
    signature = key.sign_sha256_rsa(tbs)
    try:
        key.public_key().verify(signature, tbs, padding.PKCS1v15(), hashes.SHA256())
    except Exception as exc:
        raise KeyStoreError(f"key {key.label!r} produced a signature that does not verify") from exc
    return signed_structure(tbs, signature)


def sign_crl(
    builder: x509.CertificateRevocationListBuilder, key: CaKey, *, arl: bool = False
) -> tuple[bytes, LintReport]:
    """Lint-before-sign for CRLs: returns ``(der, report)``; raises :class:`LintFailedError` on blocking findings.

    For the CRL publisher: pass the complete builder (issuer name, times, entries, extensions — including the
    critical IDP from :func:`jpki_remote.ca.distribution.issuing_distribution_point`).
    """
    copy = builder.sign(throwaway_key(), hashes.SHA256())
    report = lint_crl(copy.public_bytes(Encoding.DER), arl=arl)
    if not report.ok:
        raise LintFailedError(f"CRL refused by the linter: {report.summary()}", report.errors)
    return sign_tbs(copy.tbs_certlist_bytes, key), report
