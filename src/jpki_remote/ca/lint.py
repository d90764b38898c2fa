"""Lint before sign: pkilint, in-process, on certificates, CRLs and OCSP responses.

pkilint's validator containers are built once per thread and reused (building one costs more than linting a
certificate), and walk the document with :mod:`jpki_remote.ca.lint_walk` (same findings, a quarter less time); a
document takes a few milliseconds. :class:`Linter` can also spread certificate linting over a
pool of worker processes (``Settings.ca_lint_workers``), which is how issuance gets past one core's worth of lint.

A finding whose severity is ERROR or FATAL stops issuance unless its code is on :data:`ACCEPTED_FINDINGS` — a short
allow-list of findings that are expected for the JPKI profile, each with its reason. Nothing is silenced wholesale:
a code not on the list, and every FATAL, always blocks. Anything pkilint cannot even parse is FATAL.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

BLOCKING = ("FATAL", "ERROR")

# Findings that are expected for this profile and accepted, with the reason. Keep it short; every entry needs a
# reason a security auditor would accept.
ACCEPTED_FINDINGS: dict[str, str] = {}


@dataclass(frozen=True)
class Finding:
    severity: str  # FATAL, ERROR, WARNING, NOTICE, INFO
    code: str  # e.g. pkix.ca_certificate_no_ku_extension
    message: str
    path: str  # node path in the document, e.g. certificate.tbsCertificate.extensions.2

    @property
    def accepted(self) -> bool:
        return self.code in ACCEPTED_FINDINGS

    @property
    def blocking(self) -> bool:
        return self.severity in BLOCKING and (self.severity == "FATAL" or not self.accepted)

    def __str__(self) -> str:
        suffix = f": {self.message}" if self.message else ""
        return f"{self.code} ({self.severity}) at {self.path}{suffix}"


@dataclass(frozen=True)
class LintReport:
    document: str  # "certificate", "crl", "ocsp_response"
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        """Findings that block signing."""
        return tuple(f for f in self.findings if f.blocking)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return "; ".join(str(f) for f in self.errors) or "no blocking findings"


# -- pkilint plumbing ----------------------------------------------------------------------------------------------
_containers = threading.local()


def build_certificate_container() -> Any:
    """pkilint's RFC 5280 certificate validators, as pkilint builds them."""
    from pkilint.pkix import certificate, extension, name

    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


def build_crl_container() -> Any:
    """pkilint's RFC 5280 CRL validators (the same for ARLs), as pkilint builds them."""
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


def build_ocsp_container() -> Any:
    """pkilint's RFC 6960 OCSP response validators, as pkilint builds them."""
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


def _cached(attribute: str, build: Callable[[], Any]) -> Any:
    """This thread's container ``attribute``, built and given the indexed walk on first use."""
    container = getattr(_containers, attribute, None)
    if container is None:
        from jpki_remote.ca import lint_walk  # imports pkilint: only when something is linted

        container = build()
        lint_walk.install(container)
        setattr(_containers, attribute, container)
    return container


def _certificate_container() -> Any:
    return _cached("certificate", build_certificate_container)


def _crl_container() -> Any:
    return _cached("crl", build_crl_container)


def _ocsp_container() -> Any:
    return _cached("ocsp", build_ocsp_container)


def _run(document: str, der: bytes, loader_name: str, container: Any) -> LintReport:
    from pkilint import loader

    try:
        doc = getattr(loader, loader_name)().load_der_document(der, document)
        results = container.validate(doc.root)
    except Exception as exc:  # pkilint/pyasn1 failing on the input is itself a blocking finding
        return LintReport(document, (Finding("FATAL", "lint.undecodable", f"{type(exc).__name__}: {exc}", ""),))
    findings = tuple(
        Finding(fd.finding.severity.name, fd.finding.code, fd.message or "", str(result.node.path))
        for result in results
        for fd in result.finding_descriptions
    )
    return LintReport(document, findings)


def lint_certificate(der: bytes) -> LintReport:
    """Lint one DER certificate against RFC 5280 (pkilint's PKIX certificate validators)."""
    return _run("certificate", der, "RFC5280CertificateDocumentLoader", _certificate_container())


def lint_crl(der: bytes, *, arl: bool = False) -> LintReport:
    """Lint one DER CRL (or ARL) against RFC 5280 — for the CRL publisher's lint-before-sign. pkilint's RFC 5280
    validators are the same for both; ``arl`` says which one the caller means."""
    return _run("crl", der, "RFC5280CertificateListDocumentLoader", _crl_container())


def lint_ocsp_response(der: bytes) -> LintReport:
    """Lint one DER OCSPResponse against RFC 6960."""
    return _run("ocsp_response", der, "RFC6960OCSPResponseDocumentLoader", _ocsp_container())


# -- the linter used by issuance -----------------------------------------------------------------------------------
def _warm_up() -> None:
    _certificate_container()


class Linter:
    """Lints certificates in the calling thread (``workers=0``) or in a pool of ``workers`` processes."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = max(0, workers)
        self._pool: Executor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> Executor:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_warm_up)
                atexit.register(self.close)
            return self._pool

    def lint_certificates(self, ders: Sequence[bytes]) -> list[LintReport]:
        if self.workers == 0 or len(ders) == 0:
            return [lint_certificate(der) for der in ders]
        pool = self._executor()
        try:
            futures = [pool.submit(lint_certificate, der) for der in ders]
            return [future.result() for future in futures]
        except BrokenProcessPool:
            # A worker died (killed, out of memory): start a new pool next time, lint this batch here.
            log.warning("lint worker pool broke; restarting it and linting in-process meanwhile")
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            return [lint_certificate(der) for der in ders]

    def worker_pids(self) -> list[int]:
        """Process ids of the lint workers (for CPU accounting in benchmarks); empty without a pool."""
        with self._lock:
            processes = getattr(self._pool, "_processes", None) or {}
            return sorted(processes)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
