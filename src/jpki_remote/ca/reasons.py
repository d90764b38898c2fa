"""Revocation reasons (RFC 5280 §5.3.1 CRLReason) and when JPKI uses them.

| event | reason | certificates |
|---|---|---|
| renewal (更新) | superseded (4) | the old pair |
| change of the basic four facts (異動: move, name change) | affiliationChanged (3) | signature only |
| loss or theft of the card, key compromise (紛失・盗難) | keyCompromise (1) | both |
| death (死亡) | cessationOfOperation (5) | both |
| suspension (一時停止) | certificateHold (6), undone by removeFromCRL | both |
| holder's request without a stated cause (失効申請) | unspecified (0) | either |
| compromise of the CA | cACompromise (2) | all |
"""

from __future__ import annotations

from cryptography import x509

CODES: dict[x509.ReasonFlags, int] = {
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.remove_from_crl: 8,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}
FLAGS = {code: flag for flag, code in CODES.items()}

UNSPECIFIED, KEY_COMPROMISE, CA_COMPROMISE, AFFILIATION_CHANGED, SUPERSEDED, CESSATION_OF_OPERATION = range(6)
CERTIFICATE_HOLD = 6
REMOVE_FROM_CRL = 8

# Reasons this CA revokes with. removeFromCRL is not a revocation (see CertificateAuthority.release_hold);
# privilegeWithdrawn and aACompromise do not apply to JPKI holder certificates.
REVOCATION_CODES = frozenset({0, 1, 2, 3, 4, 5, 6})

# RFC 5280 names (as openssl prints them and the CLI accepts them), e.g. "keyCompromise".
NAMES = {
    0: "unspecified",
    1: "keyCompromise",
    2: "cACompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
    6: "certificateHold",
    8: "removeFromCRL",
    9: "privilegeWithdrawn",
    10: "aACompromise",
}


def reason_code(reason: x509.ReasonFlags | str | int) -> int:
    """Accept a ReasonFlags, an RFC 5280 name (``keyCompromise``), a pyca name (``key_compromise``) or a code."""
    if isinstance(reason, x509.ReasonFlags):
        return CODES[reason]
    if isinstance(reason, int):
        if reason not in NAMES:
            raise ValueError(f"no CRLReason code {reason}")
        return reason
    wanted = reason.strip().replace("_", "").replace("-", "").lower()
    for code, name in NAMES.items():
        if name.lower() == wanted:
            return code
    raise ValueError(f"unknown revocation reason {reason!r}; use one of {', '.join(NAMES.values())}")


def reason_name(code: int | None) -> str | None:
    return None if code is None else NAMES.get(code, str(code))
