"""The indexed walk (ca/lint_walk.py) gives exactly pkilint's own findings — same codes, messages, paths, order.

The corpus: the JPKI profiles (signature, auth, CA, OCSP signer), documents with known findings, a shard CRL, an OCSP
response, and for each of them a few hundred mutants (random bytes changed, deterministic seed) — the mutants reach
odd corners: undecodable extensions, wrong types where a validator expects another, FATAL decoding failures.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from jpki_remote.ca import distribution, lint, lint_walk, profiles
from jpki_remote.ca.holder import HolderIdentity
from jpki_remote.ca.models import AuthorityKind
from jpki_remote.ca.signing import prepare_certificate
from jpki_remote.ca.validity import certificate_validity
from jpki_remote.config import Settings

NOW = datetime.now(UTC).replace(microsecond=0)
MUTANTS = 150

Loader = tuple[str, str, Callable[[], Any]]
CERTIFICATE: Loader = ("certificate", "RFC5280CertificateDocumentLoader", lint.build_certificate_container)
CRL: Loader = ("crl", "RFC5280CertificateListDocumentLoader", lint.build_crl_container)
OCSP: Loader = ("ocsp_response", "RFC6960OCSPResponseDocumentLoader", lint.build_ocsp_container)


@pytest.fixture(scope="module")
def walks() -> dict[str, tuple[Any, Any]]:
    """Per document kind: pkilint's container as pkilint builds it, and one with the indexed walk."""
    pairs = {}
    for kind, _loader, build in (CERTIFICATE, CRL, OCSP):
        indexed = build()
        lint_walk.install(indexed)
        pairs[kind] = (build(), indexed)
    return pairs


def _findings(walks: dict[str, tuple[Any, Any]], loader: Loader, der: bytes) -> tuple[lint.LintReport, ...]:
    kind, loader_name, _build = loader
    return tuple(lint._run(kind, der, loader_name, container) for container in walks[kind])


def _mutants(der: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(MUTANTS):
        mutant = bytearray(der)
        for _ in range(rng.choice((1, 1, 2, 3))):
            mutant[rng.randrange(len(mutant))] = rng.randrange(256)
        out.append(bytes(mutant))
    return out


def _jpki_certificates(settings: Settings, holder: HolderIdentity, keys: list[rsa.RSAPrivateKey]) -> list[bytes]:
    ca_key, holder_key = keys[0], keys[1]
    ders = []
    for kind in AuthorityKind:
        validity = certificate_validity(kind, holder.birth_date, NOW, date(2035, 1, 1))
        builder = profiles.holder_certificate(
            settings, kind, holder, holder_key.public_key(), ca_key.public_key(), 4242 + len(ders), 3,
            validity.not_before, validity.not_after,
        )  # fmt: skip
        ders.append(prepare_certificate(builder).lint_copy)
    root = profiles.ca_certificate(
        settings, AuthorityKind.SIGNATURE, ca_key.public_key(), 77, NOW, NOW + timedelta(days=3650)
    )
    ders.append(prepare_certificate(root).lint_copy)
    signer = profiles.ocsp_signer_certificate(
        settings, AuthorityKind.SIGNATURE, keys[2].public_key(), ca_key.public_key(), 78, NOW, NOW + timedelta(days=30)
    )
    ders.append(prepare_certificate(signer).lint_copy)
    return ders


def _faulty_certificate(key: rsa.RSAPrivateKey) -> bytes:
    """A CA certificate without keyUsage, with an invalid URI and an empty subject: several findings at once."""
    empty = x509.Name([])
    return (
        x509.CertificateBuilder()
        .subject_name(empty)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Faulty")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier("http://bad host/x.crl")], None, None, None)]
            ),
            False,
        )
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


def _shard_crl(settings: Settings, key: rsa.RSAPrivateKey) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(profiles.ca_name(settings, AuthorityKind.SIGNATURE))
        .last_update(NOW)
        .next_update(NOW + timedelta(days=1))
        .add_extension(x509.CRLNumber(9), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .add_extension(distribution.issuing_distribution_point(settings, AuthorityKind.SIGNATURE, 3), True)
    )
    for serial in range(1, 6):
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW)
            .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def _ocsp_response(keys: list[rsa.RSAPrivateKey]) -> bytes:
    ca_key, subject_key = keys[0], keys[1]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OCSP Test CA")])
    issuer = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(5)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=10))
        .sign(ca_key, hashes.SHA256())
    )
    subject = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "holder")]))
        .issuer_name(name)
        .public_key(subject_key.public_key())
        .serial_number(6)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=10))
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ocsp.OCSPResponseBuilder()
        .add_response(
            subject,
            issuer,
            hashes.SHA1(),  # noqa: S303 - the RFC 6960 CertID hash
            ocsp.OCSPCertStatus.GOOD,
            NOW,
            NOW + timedelta(hours=6),
            None,
            None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
        .sign(ca_key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


def test_profiles_and_faulty_certificates_get_pkilints_own_findings(
    walks: dict[str, tuple[Any, Any]], holder_keys: list[rsa.RSAPrivateKey], holder: HolderIdentity
) -> None:
    settings = Settings(public_base_url="http://127.0.0.1:8080", crl_shards=16)
    ders = [*_jpki_certificates(settings, holder, holder_keys), _faulty_certificate(holder_keys[0])]
    for der in ders:
        stock, indexed = _findings(walks, CERTIFICATE, der)
        assert indexed.findings == stock.findings
    faulty_codes = {f.code for f in _findings(walks, CERTIFICATE, ders[-1])[1].errors}
    assert {"pkix.ca_certificate_no_ku_extension", "pkix.invalid_uri_syntax"} <= faulty_codes


@pytest.mark.parametrize("seed", range(4))
def test_mutated_certificates_get_pkilints_own_findings(
    walks: dict[str, tuple[Any, Any]],
    holder_keys: list[rsa.RSAPrivateKey],
    holder: HolderIdentity,
    seed: int,
) -> None:
    settings = Settings(public_base_url="http://127.0.0.1:8080", crl_shards=16)
    originals = _jpki_certificates(settings, holder, holder_keys)
    outcomes = set()
    for der in _mutants(originals[seed % len(originals)], seed):
        stock, indexed = _findings(walks, CERTIFICATE, der)
        assert indexed.findings == stock.findings
        outcomes.add("fatal" if any(f.severity == "FATAL" for f in stock.findings) else "decoded")
    assert outcomes == {"fatal", "decoded"}  # the mutants reached both the decoder's failures and the validators


def test_crls_and_ocsp_responses_and_their_mutants_get_pkilints_own_findings(
    walks: dict[str, tuple[Any, Any]], holder_keys: list[rsa.RSAPrivateKey]
) -> None:
    settings = Settings(public_base_url="http://127.0.0.1:8080", crl_shards=16)
    for loader, der in ((CRL, _shard_crl(settings, holder_keys[0])), (OCSP, _ocsp_response(holder_keys))):
        for document in [der, *_mutants(der, 99)]:
            stock, indexed = _findings(walks, loader, document)
            assert indexed.findings == stock.findings


def test_the_walk_is_installed_on_every_container_and_remembers_places() -> None:
    from pkilint.validation import ValidatorContainer

    container = lint.build_certificate_container()
    lint_walk.install(container)
    pending, containers = [container], 0
    while pending:
        node = pending.pop()
        if isinstance(node, ValidatorContainer):
            containers += 1
            assert isinstance(node.__dict__.get("_validate_rec"), lint_walk.IndexedWalk)
            pending.extend(node.validators)
    assert containers > 1
    walk = container.__dict__["_validate_rec"]
    for n in range(lint_walk.MAX_REMEMBERED_PLACES + 10):
        walk._applicable(f"certificate.strange.{n}", int)
    assert len(walk._places) <= lint_walk.MAX_REMEMBERED_PLACES
