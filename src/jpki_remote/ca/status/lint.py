"""pkilint, in-process, for CRLs (``lint_crl`` PKIX profile) and OCSP responses (``lint_ocsp_response``).

The validator containers are built once per process (building them costs more than linting a small document) and
used under a lock (pkilint makes no thread-safety promise).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

SEVERITY_ORDER = {"INFO": 0, "NOTICE": 1, "WARNING": 2, "ERROR": 3, "FATAL": 4}

_lock = threading.Lock()
_validators: dict[str, Any] = {}


@dataclass(frozen=True)
class Finding:
    severity: str  # INFO / NOTICE / WARNING / ERROR / FATAL
    code: str
    path: str
    message: str

    @property
    def is_error(self) -> bool:
        return SEVERITY_ORDER.get(self.severity, 4) >= SEVERITY_ORDER["ERROR"]

    def __str__(self) -> str:
        detail = f": {self.message}" if self.message else ""
        return f"{self.severity} {self.code} @ {self.path}{detail}"


def _crl_validator() -> Any:
    from pkilint import pkix
    from pkilint.pkix import crl, extension, name

    return crl.create_pkix_crl_validator_container(
        [
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [
            crl.create_issuer_validator_container([]),
            crl.create_validity_validator_container([]),
            crl.create_extensions_validator_container([]),
        ],
    )


def _ocsp_validator() -> Any:
    from pkilint import pkix
    from pkilint.pkix import extension, name, ocsp

    return ocsp.create_pkix_ocsp_response_validator_container(
        [
            ocsp.create_response_decoder(),
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [],
    )


def _run(kind: str, der: bytes) -> list[Finding]:
    from pkilint import loader

    with _lock:
        if kind not in _validators:
            _validators[kind] = _crl_validator() if kind == "crl" else _ocsp_validator()
        if kind == "crl":
            document = loader.RFC5280CertificateListDocumentLoader().load_der_document(der, "crl")
        else:
            document = loader.RFC6960OCSPResponseDocumentLoader().load_der_document(der, "ocsp-response")
        results = _validators[kind].validate(document.root)
    findings = []
    for result in results:
        for description in result.finding_descriptions:
            findings.append(
                Finding(
                    description.finding.severity.name,
                    description.finding.code,
                    result.node.path,
                    description.message or "",
                )
            )
    return findings


def lint_crl(der: bytes) -> list[Finding]:
    """All pkilint PKIX CRL findings for ``der`` (raises ValueError if it cannot even be decoded)."""
    return _run("crl", der)


def lint_ocsp_response(der: bytes) -> list[Finding]:
    """All pkilint OCSP response findings for ``der`` (raises ValueError if it cannot even be decoded)."""
    return _run("ocsp", der)
