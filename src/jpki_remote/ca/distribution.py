"""Where a certificate's status is published: CRL shard URLs and the OCSP URL.

This is the ONE place that builds the CRL distribution point. Issuance writes it into each certificate's
cRLDistributionPoints; the CRL publisher writes the same structure into the shard CRL's critical
issuingDistributionPoint. RFC 5280 §6.3.3 (and OpenSSL's "different CRL scope" error) require the two names to match
byte for byte, so both sides must call :func:`distribution_point_name` — never format the URL themselves.

Sharding follows Boulder/EJBCA: the shard is derived from the random serial and fixed at issuance, so a CRL shard
never grows without bound and needs no re-sharding of existing certificates.
"""

from __future__ import annotations

from cryptography import x509

from jpki_remote.ca.models import AuthorityKind
from jpki_remote.config import Settings


def shard_for_serial(serial: int, shard_count: int) -> int:
    """The CRL shard of ``serial``: its low bits modulo ``shard_count`` (serials are random, so shards stay even)."""
    if shard_count < 1:
        raise ValueError(f"shard_count must be at least 1, not {shard_count}")
    if serial < 0:
        raise ValueError("serial numbers are positive")
    return serial % shard_count


def _base(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/")


def crl_url(settings: Settings, kind: AuthorityKind | str, shard: int) -> str:
    """``{public_base_url}/crl/{kind}/{shard}.crl`` — e.g. ``http://127.0.0.1:8080/crl/signature/3.crl``."""
    kind = AuthorityKind(kind)
    if not 0 <= shard < max(settings.crl_shards, 1):
        raise ValueError(f"shard {shard} is outside 0..{settings.crl_shards - 1}")
    return f"{_base(settings)}/crl/{kind.value}/{shard}.crl"


def ocsp_url(settings: Settings, kind: AuthorityKind | str) -> str:
    """``{public_base_url}/ocsp/{kind}`` — the responder URL written into each certificate's AIA."""
    return f"{_base(settings)}/ocsp/{AuthorityKind(kind).value}"


def distribution_point_name(settings: Settings, kind: AuthorityKind | str, shard: int) -> list[x509.GeneralName]:
    """The ``fullName`` of shard ``shard``: one URI. Used verbatim by both the CDP and the IDP."""
    return [x509.UniformResourceIdentifier(crl_url(settings, kind, shard))]


def crl_distribution_points(settings: Settings, kind: AuthorityKind | str, shard: int) -> x509.CRLDistributionPoints:
    """The certificate extension (non-critical) naming the shard CRL."""
    point = x509.DistributionPoint(
        full_name=distribution_point_name(settings, kind, shard), relative_name=None, reasons=None, crl_issuer=None
    )
    return x509.CRLDistributionPoints([point])


def issuing_distribution_point(
    settings: Settings, kind: AuthorityKind | str, shard: int
) -> x509.IssuingDistributionPoint:
    """The CRL extension (to be marked critical) scoping a shard CRL to end-entity certificates of ``shard``."""
    return x509.IssuingDistributionPoint(
        full_name=distribution_point_name(settings, kind, shard),
        relative_name=None,
        only_contains_user_certs=True,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )


def authority_information_access(settings: Settings, kind: AuthorityKind | str) -> x509.AuthorityInformationAccess:
    """AIA with the OCSP responder URL of ``kind``."""
    location = x509.UniformResourceIdentifier(ocsp_url(settings, kind))
    return x509.AuthorityInformationAccess([x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP, location)])
