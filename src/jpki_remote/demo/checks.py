"""Checks from outside, after the scripted run: what a relying party, an auditor and the admin dashboard see.

* :func:`ocsp_status` — an RFC 6960 request built with ``cryptography`` POSTed to the server's OCSP endpoint; the
  answer's signature is verified (delegated responder certified by the CA, with the OCSP-signing key purpose);
* :func:`check_audit` — the whole audit log recomputed and checked against the signed tree heads;
* :func:`check_statistics` — the admin live statistics (analytics API) count the procedures of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def ocsp_status(base_url: str, certificate: Any, issuer: Any, kind: str) -> str:
    """The status the server's OCSP endpoint gives (RFC 6960 request built with cryptography), signature checked."""
    import httpx
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.x509 import ocsp

    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()  # noqa: S303
    response = httpx.post(
        f"{base_url}/ocsp/{kind}",
        content=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
        timeout=30.0,
    )
    answer = ocsp.load_der_ocsp_response(response.content)
    if answer.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return f"error:{answer.response_status.name}"
    signer = answer.certificates[0] if answer.certificates else issuer
    if signer is not issuer:
        issuer.public_key().verify(  # the delegated responder is certified by the CA …
            signer.signature, signer.tbs_certificate_bytes, padding.PKCS1v15(), signer.signature_hash_algorithm
        )
        if (
            x509.ExtendedKeyUsageOID.OCSP_SIGNING
            not in signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ):
            return "error:responder_not_authorised"
    signer.public_key().verify(  # … and signed this answer
        answer.signature, answer.tbs_response_bytes, padding.PKCS1v15(), answer.signature_hash_algorithm
    )
    if answer.serial_number != certificate.serial_number:
        return "error:wrong_serial"
    return answer.certificate_status.name.lower()


def check_ocsp(env: Any, base_url: str, expectations: list[tuple[str, int, str, str]]) -> list[Check]:
    """Each (kind, serial, expected status, why) asked of the server's OCSP endpoint."""
    from cryptography import x509

    checks = []
    for kind, serial, wanted, why in expectations:
        try:
            certificate = x509.load_der_x509_certificate(env.ca.certificate(kind, serial).der)
            issuer = env.ca.authority_certificate(kind)
            got = ocsp_status(base_url, certificate, issuer, kind)
        except Exception as exc:
            got = f"error:{type(exc).__name__}: {exc}"
        checks.append(Check(f"OCSP {why}", got == wanted, f"{got} (expected {wanted}, serial {serial:x})"))
    return checks


def check_audit(env: Any) -> Check:
    from jpki_remote.audit.log import AuditLog
    from jpki_remote.audit.signing import signer_from_settings

    audit = AuditLog(env.db, signer_from_settings(env.settings))
    report = audit.verify()
    detail = f"{report.events} events, {report.heads} signed tree heads"
    if not report.ok:
        detail += ": " + "; ".join(report.problems[:3])
    return Check(
        "audit log verifies (RFC 6962 Merkle tree, signed tree heads)", report.ok and report.events > 0, detail
    )


def check_statistics(env: Any, base_url: str, results: list[Any]) -> Check:
    """The admin live statistics (analytics API, admin token) count what the run did."""
    import httpx

    from jpki_remote.web.app import admin_token

    response = httpx.get(
        f"{base_url}/api/analytics/live",
        headers={"Authorization": f"Bearer {admin_token(env.settings)}"},
        timeout=60.0,
    )
    if response.status_code != 200:
        return Check("admin live statistics", False, f"GET /api/analytics/live → {response.status_code}")
    stats = response.json()
    remote_done = sum(
        1 for r in results if r.ok and r.expected == "completed" and any(c in r.name for c in ("kiosk", "online"))
    )
    started = sum(1 for r in results if r.ok)  # each of them went through the server as a procedure
    total = int(stats.get("total") or 0)
    avoided = int(stats.get("counter_visits_avoided") or 0)
    by_channel = stats.get("by_channel", {})
    ok = (
        total >= started > 0
        and avoided >= remote_done
        and by_channel.get("kiosk", 0) >= 1
        and by_channel.get("online", 0) >= 1
    )
    return Check(
        "admin live statistics count the run",
        ok,
        f"{total} procedures (kiosk {by_channel.get('kiosk', 0)}, online {by_channel.get('online', 0)}, counter "
        f"{by_channel.get('counter', 0)}; {started} of this run), {avoided} counter visits avoided "
        f"(≥ {remote_done} expected), {stats.get('staff_hours_saved', 0):.1f} staff hours saved",
    )
