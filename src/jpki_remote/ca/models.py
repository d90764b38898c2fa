"""CA tables: authorities, certificates (one row per serial, reserved before signing), revocations, lint
findings, CRL shards and precomputed OCSP responses.

Serial numbers are stored as lower-case hex strings without leading zeros (``format(serial, "x")``) so that
64-bit-and-larger random serials fit every database.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, Enum, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jpki_remote.store.database import Base


class AuthorityKind(enum.StrEnum):
    SIGNATURE = "signature"  # 署名用認証局
    AUTHENTICATION = "authentication"  # 利用者証明用認証局


class CertificateState(enum.StrEnum):
    RESERVED = "reserved"  # serial reserved, nothing signed yet
    LINT_FAILED = "lint_failed"  # linter refused the TBS; never signed
    ISSUED = "issued"
    REVOKED = "revoked"


class Authority(Base):
    __tablename__ = "ca_authorities"

    kind: Mapped[AuthorityKind] = mapped_column(Enum(AuthorityKind, native_enum=False), primary_key=True)
    subject: Mapped[str] = mapped_column(Text)  # RFC 4514 string, for display
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    key_label: Mapped[str] = mapped_column(String(64))  # name of the CA key in the key store
    ocsp_certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    ocsp_key_label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Certificate(Base):
    __tablename__ = "ca_certificates"
    __table_args__ = (
        UniqueConstraint("authority", "request_id", name="uq_ca_certificates_request"),
        Index("ix_ca_certificates_revoked_shard", "authority", "shard", "state"),
    )

    authority: Mapped[AuthorityKind] = mapped_column(
        Enum(AuthorityKind, native_enum=False), ForeignKey("ca_authorities.kind"), primary_key=True
    )
    serial_hex: Mapped[str] = mapped_column(String(48), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))  # idempotency key chosen by the caller
    # SHA-256 of what was asked (kind, holder facts, public key, card expiry): a reused request id with other content
    # is refused instead of silently answered with the first certificate.
    request_digest: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[CertificateState] = mapped_column(Enum(CertificateState, native_enum=False), index=True)
    holder_ref: Mapped[str] = mapped_column(String(64), index=True)  # opaque card/holder reference, no PII
    shard: Mapped[int] = mapped_column(Integer)  # CRL partition named in the certificate's CRLDP
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    der: Mapped[bytes | None] = mapped_column(LargeBinary)
    reserved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revocation_reason: Mapped[int | None] = mapped_column(Integer)  # RFC 5280 CRLReason code
    # RFC 5280 §5.3.2: when the key is known or suspected to have been compromised, if earlier than revoked_at.
    invalidity_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LintFinding(Base):
    __tablename__ = "ca_lint_findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    authority: Mapped[AuthorityKind] = mapped_column(Enum(AuthorityKind, native_enum=False))
    serial_hex: Mapped[str] = mapped_column(String(48), index=True)  # or a CRL id such as "crl:3:17"
    severity: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CrlShard(Base):
    __tablename__ = "ca_crl_shards"

    authority: Mapped[AuthorityKind] = mapped_column(Enum(AuthorityKind, native_enum=False), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    crl_number: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_update: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    entries: Mapped[int] = mapped_column(Integer)
    # count/max(revoked_at) of the shard's revocations when built; a different value means the shard is dirty.
    source_fingerprint: Mapped[str] = mapped_column(String(96), default="")


class OcspResponse(Base):
    """A signed OCSP response for one certificate, produced ahead of time (RFC 6960 §2.5)."""

    __tablename__ = "ca_ocsp_responses"

    authority: Mapped[AuthorityKind] = mapped_column(Enum(AuthorityKind, native_enum=False), primary_key=True)
    serial_hex: Mapped[str] = mapped_column(String(48), primary_key=True)
    hash_algorithm: Mapped[str] = mapped_column(String(16), primary_key=True)  # CertID hash: sha1 / sha256
    der: Mapped[bytes] = mapped_column(LargeBinary)
    cert_status: Mapped[str] = mapped_column(String(8), default="good")  # good / revoked, as signed in `der`
    produced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_update: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # SHA-256 (hex) of the delegated OCSP signer certificate embedded in `der`. A row whose signer is not the
    # authority's current one (renewed or replaced signer; "" for rows from before this column) is due at once.
    signer_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
