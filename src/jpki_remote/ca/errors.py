"""Typed errors of the CA package. Every one carries a message a caller can show or log (no PII, no keys)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jpki_remote.ca.lint import Finding


class CaError(Exception):
    """Base class: the CA refused a request. The message says why."""


class NotSetUpError(CaError):
    """The authorities have not been created yet (run ``jpki-remote ca setup``)."""


class HolderDataError(CaError, ValueError):
    """The holder's data cannot go into the requested certificate (missing field, bad format)."""


class UnderAgeError(HolderDataError):
    """No signature certificate for holders under 15 (署名用電子証明書は15歳未満には発行しない)."""


class ValidityError(CaError, ValueError):
    """No valid validity period exists (card already expired, birth date in the future, ...)."""


class UnsupportedKeyError(CaError, ValueError):
    """The subject public key is not an RSA-2048 key with exponent 65537 as the card generates."""


class RequestConflictError(CaError):
    """The request id was already used for a different request (other holder, key or kind)."""


class LintFailedError(CaError):
    """pkilint found errors in the to-be-signed structure; nothing was signed."""

    def __init__(self, message: str, findings: Sequence[Finding]) -> None:
        super().__init__(message)
        self.findings = tuple(findings)


class UnknownCertificateError(CaError, LookupError):
    """No certificate with this serial number was issued by this authority."""


class RevocationError(CaError):
    """The revocation is not allowed (reason not valid for this certificate, not issued, already revoked)."""
