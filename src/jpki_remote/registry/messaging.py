"""Signed and encrypted messages between a municipality and the CA (機構): CMS sign-then-encrypt.

A message is ``EnvelopedData(SignedData(payload))``: the sender signs the payload with its messaging key (CMS
SignedData, SHA-256, RSA PKCS#1 v1.5, signer certificate included) and encrypts the result to the recipient's
messaging certificate (CMS EnvelopedData, AES-256-CBC, RSA key transport). Both are standard CMS, so an auditor can
check a stored message with ``openssl cms -decrypt`` then ``openssl cms -verify``. The law requires the CA's
notification to be encrypted (施行規則第9条第2項); signing both directions lets each side prove what it received.

pyca/cryptography builds both layers and decrypts; it has no SignedData verifier, so :func:`verify_signed` checks the
signature with asn1crypto's parser: the messageDigest attribute must equal SHA-256 of the content, the signature over
the DER of the signed attributes must verify with the signer certificate, and that certificate must be exactly the
one pinned for the expected sender.

Messaging keys are one RSA-2048 key per party, kept as encrypted PKCS#8 files (mode 0600) in a directory of the data
dir; they never leave that file except into this process's memory.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

SHA256_OID = "sha256"


class MessagingError(Exception):
    """A message cannot be sealed or opened: wrong recipient, bad signature, unexpected signer, garbage."""


@dataclass(frozen=True)
class MessagingKey:
    party: str
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


def generate_messaging_key(party: str, display_name: str, *, years: int = 10) -> MessagingKey:
    """A new RSA-2048 key and a self-signed certificate naming ``party`` (pinned by the peer, not chained)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jpki-remote messaging"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, party),
            x509.NameAttribute(NameOID.COMMON_NAME, display_name[:64] or party),
        ]
    )
    start = datetime.now(UTC) - timedelta(minutes=5)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return MessagingKey(party=party, certificate=certificate, private_key=key)


class MessagingKeyring:
    """Messaging keys of the parties this process speaks for, as encrypted files in ``directory``."""

    def __init__(self, directory: Path, passphrase: str = "") -> None:
        self.directory = Path(directory)
        self._passphrase = passphrase.encode() if passphrase else None
        self._cache: dict[str, MessagingKey] = {}

    def _secret(self) -> bytes:
        if self._passphrase:
            return self._passphrase
        path = self.directory / ".passphrase"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        self._passphrase = path.read_text().strip().encode()
        return self._passphrase

    @staticmethod
    def _file_stem(party: str) -> str:
        return "".join(c if c.isalnum() else "_" for c in party)

    def get_or_create(self, party: str, display_name: str = "") -> MessagingKey:
        if party in self._cache:
            return self._cache[party]
        stem = self.directory / self._file_stem(party)
        key_path, cert_path = stem.with_suffix(".key.pem"), stem.with_suffix(".crt.pem")
        if key_path.exists() and cert_path.exists():
            private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=self._secret())
            if not isinstance(private_key, rsa.RSAPrivateKey):
                raise MessagingError(f"messaging key of {party} is not RSA")
            item = MessagingKey(party, x509.load_pem_x509_certificate(cert_path.read_bytes()), private_key)
        else:
            item = generate_messaging_key(party, display_name or party)
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            pem = item.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(self._secret()),
            )
            _write_atomically(key_path, pem, 0o600)
            _write_atomically(cert_path, item.certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        self._cache[party] = item
        return item


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def seal(payload: bytes, sender: MessagingKey, recipient_certificate: x509.Certificate) -> bytes:
    """Sign ``payload`` as ``sender`` and encrypt it to ``recipient_certificate``; returns CMS DER."""
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(payload)
        .add_signer(sender.certificate, sender.private_key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(signed)
        .set_content_encryption_algorithm(algorithms_aes256_cbc())
        .add_recipient(recipient_certificate)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def algorithms_aes256_cbc() -> type:
    from cryptography.hazmat.primitives.ciphers import algorithms

    return algorithms.AES256


def open_sealed(message: bytes, recipient: MessagingKey, expected_sender: x509.Certificate) -> bytes:
    """Decrypt ``message`` with ``recipient``'s key and verify it was signed by ``expected_sender``."""
    try:
        signed = pkcs7.pkcs7_decrypt_der(message, recipient.certificate, recipient.private_key, [])
    except (ValueError, TypeError) as exc:
        raise MessagingError(f"cannot decrypt the message: {exc}") from None
    return verify_signed(signed, expected_sender)


def verify_signed(signed_der: bytes, expected_signer: x509.Certificate) -> bytes:
    """Check a CMS SignedData (one signer, signed attributes, SHA-256/RSA) and return its content."""
    try:
        info = asn1_cms.ContentInfo.load(signed_der)
        if info["content_type"].native != "signed_data":
            raise MessagingError("not a CMS SignedData")
        signed_data = info["content"]
        content = signed_data["encap_content_info"]["content"].native
        signer_infos = signed_data["signer_infos"]
        if not isinstance(content, bytes) or len(signer_infos) != 1:
            raise MessagingError("expected one signer over embedded content")
        signer = signer_infos[0]
        sid = signer["sid"]
        if sid.name != "issuer_and_serial_number":
            raise MessagingError("unsupported signer identifier")
        if (
            sid.chosen["serial_number"].native != expected_signer.serial_number
            or sid.chosen["issuer"].dump() != expected_signer.issuer.public_bytes()
        ):
            raise MessagingError("the message was signed by someone other than the expected sender")
        if signer["digest_algorithm"]["algorithm"].native != SHA256_OID:
            raise MessagingError("unsupported digest algorithm")
        attrs = signer["signed_attrs"]
        digest = None
        content_type_ok = False
        for attr in attrs:
            kind = attr["type"].native
            if kind == "message_digest":
                digest = attr["values"][0].native
            elif kind == "content_type":
                content_type_ok = attr["values"][0].native == "data"
        if digest is None or not content_type_ok:
            raise MessagingError("signed attributes lack messageDigest or contentType")
        if digest != hashlib.sha256(content).digest():
            raise MessagingError("message digest does not match the content")
        to_verify = attrs.untag().dump(force=True)  # the signature covers the attributes encoded as a SET
        signature = signer["signature"].native
    except MessagingError:
        raise
    except Exception as exc:  # asn1crypto raises many kinds on garbage
        raise MessagingError(f"malformed CMS SignedData: {type(exc).__name__}") from None
    public_key = expected_signer.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise MessagingError("the sender's messaging key is not RSA")
    try:
        public_key.verify(signature, to_verify, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise MessagingError("bad signature on the message") from None
    return content


def digest_hex(message: bytes) -> str:
    return hashlib.sha256(message).hexdigest()
