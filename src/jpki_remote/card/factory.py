"""Create a fully personalised virtual card in one call — the way a municipality's counter would, over the issuer
secure channel (nothing is written behind the card's back).

Typical use in a test::

    from jpki_remote.card.factory import CardPins, create_card, test_holder

    made = create_card(test_holder(photo=open("face.jpg", "rb").read()), issuer_master_key=master,
                       pins=CardPins(auth="1234", sign="ABC123", text="1234", juki="1234"))
    made.card.transmit(...)                 # VirtualCard
    made.verification_code_b               # 照合番号B of this card (opens the surface AP)
    made.surface_signer_public_key         # verifies the card-face signature

:func:`deliver_card` stops where the card centre stops: the card as the municipal counter receives it (surface,
text and common APs personalised; no JPKI keys, certificates or holder PINs) — for counter issuance, which sets the
PINs and generates the keys itself.

``certificates`` is either ready DERs (:class:`IssuedCertificates`; they must match the keys the card generates, so
only useful with a deterministic ``keygen``) or a callback ``(auth_public, sign_public | None, holder) ->
IssuedCertificates`` — e.g. the CA package's issuance. Without it a throw-away test CA (``O=JPKI-TEST``) issues them.
Pass ``store=CardStore(dir)`` to persist the card (it is then reopened from disk and saves itself). The card is
made in memory and added to the store only when complete, atomically: a failed creation leaves no file behind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from jpki_remote.card import layout, personalise
from jpki_remote.card.issuer import IssuerKeyMaterial, IssuerSession
from jpki_remote.card.manufacture import manufacture
from jpki_remote.card.personalise import HolderRecord
from jpki_remote.card.signing import generate_key
from jpki_remote.card.store import CardStore
from jpki_remote.card.virtual import KeyGenerator, VirtualCard


@dataclass(frozen=True)
class CardPins:
    """The holder's passwords. ``common`` defaults to ``juki`` (UIs present them as one PIN)."""

    auth: str
    sign: str | None  # None: no signature certificate (holder under 15)
    text: str
    juki: str
    common: str | None = None


@dataclass(frozen=True)
class IssuedCertificates:
    auth: bytes
    auth_ca: bytes
    sign: bytes | None = None
    sign_ca: bytes | None = None


CertificateCallback = Callable[[rsa.RSAPublicKey, rsa.RSAPublicKey | None, HolderRecord], IssuedCertificates]


@dataclass
class DeliveredCard:
    """A card with the card-centre data but no JPKI keys, certificates or holder PINs (see :func:`deliver_card`)."""

    card: VirtualCard
    card_id: str
    serial: str
    holder: HolderRecord
    verification_code_b: str
    birth_date_key: str
    surface_signer_public_key: rsa.RSAPublicKey
    card_public_key: rsa.RSAPublicKey  # the surface AP key (proves card presence; registered at issuance)

    @property
    def kdd(self) -> bytes:
        """The card's key diversification data (INITIALIZE UPDATE), registered at issuance."""
        return self.card.state.kdd


@dataclass
class CreatedCard:
    card: VirtualCard
    card_id: str
    serial: str
    holder: HolderRecord
    verification_code_b: str
    birth_date_key: str
    certificates: IssuedCertificates
    surface_signer_public_key: rsa.RSAPublicKey
    card_public_key: rsa.RSAPublicKey  # the surface AP key (proves card presence; registered at issuance)

    @property
    def kdd(self) -> bytes:
        """The card's key diversification data (INITIALIZE UPDATE), registered at issuance."""
        return self.card.state.kdd


def test_holder(photo: bytes, **overrides: object) -> HolderRecord:
    """A plausible test resident (override any field)."""
    values: dict[str, object] = {
        "name": "番号　花子",
        "address": "東京都千代田区霞が関２丁目１番２号",
        "birth_date": dt.date(1980, 2, 17),
        "sex": "2",
        "my_number": "123456789018",
        "municipality_code": "13101",
        "card_expiry": dt.date(2035, 2, 17),
        "security_code": "2285",
        "photo": photo,
        "name_kana": "バンゴウ　ハナコ",
    }
    values.update(overrides)
    return HolderRecord(**values)  # type: ignore[arg-type]


class TestCertificateAuthority:
    """A throw-away JPKI-TEST CA pair for tests and demos (the ca package issues the real profiles)."""

    __test__ = False  # not a pytest class

    def __init__(self, keygen: KeyGenerator | None = None) -> None:
        keygen = keygen or generate_key
        self.auth_key, self.sign_key = keygen(), keygen()
        self.auth_ca = self._ca(self.auth_key, "JPKI for user authentication")
        self.sign_ca = self._ca(self.sign_key, "JPKI for digital signature")

    @staticmethod
    def _name(ou: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-TEST"),
                          x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou)])

    def _ca(self, key: rsa.RSAPrivateKey, ou: str) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        return (x509.CertificateBuilder().subject_name(self._name(ou)).issuer_name(self._name(ou))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                               critical=True)
                .sign(key, hashes.SHA256()))

    def _leaf(self, ca: x509.Certificate, ca_key: rsa.RSAPrivateKey, public: rsa.RSAPublicKey, cn: str,
              *, signing: bool) -> bytes:
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                                         x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(ca.subject).public_key(public).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365 * 5))
                .add_extension(x509.KeyUsage(True, signing, False, False, False, False, False, False, False),
                               critical=True)
                .sign(ca_key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.DER)

    def issue(self, auth: rsa.RSAPublicKey, sign: rsa.RSAPublicKey | None, holder: HolderRecord) -> IssuedCertificates:
        der = serialization.Encoding.DER
        return IssuedCertificates(
            auth=self._leaf(self.auth_ca, self.auth_key, auth, f"AUTH{holder.municipality_code}", signing=False),
            auth_ca=self.auth_ca.public_bytes(der),
            sign=None if sign is None else self._leaf(self.sign_ca, self.sign_key, sign, "SIGN", signing=True),
            sign_ca=self.sign_ca.public_bytes(der),
        )


def _holder_files(
    card: VirtualCard, holder: HolderRecord, surface_key: rsa.RSAPublicKey, text_key: rsa.RSAPublicKey,
    signer: rsa.RSAPrivateKey,
) -> dict[tuple[str, int], bytes]:
    """The EF contents the card centre writes: surface AP, text AP and the common AP card info."""
    subject_id = f"9{holder.municipality_code}0".encode()[:7].ljust(7, b"0") + b"\x08\x05001\x00\x00\x00\x00"
    files = {
        ("surface", layout.SURFACE_AGE_RECORD): personalise.age_record(holder, surface_key, signer),
        ("surface", layout.SURFACE_CARD_FACE): personalise.card_face_record(holder, surface_key, signer),
        ("surface", layout.SURFACE_BASIC_DATA): personalise.surface_basic_data(holder),
        ("surface", layout.SURFACE_CERTIFICATE): personalise.cv_certificate(
            personalise.SURFACE_ISSUER_KEY_ID, subject_id, signer.public_key(), signer),
        ("surface", layout.SURFACE_MY_NUMBER_IMAGE): personalise.my_number_image_record(holder, surface_key, signer),
    }
    number_file = personalise.text_my_number_file(holder)
    attributes = personalise.text_attributes_file(holder)
    return files | {
        ("text", layout.TEXT_MY_NUMBER): number_file,
        ("text", layout.TEXT_ATTRIBUTES): attributes,
        ("text", layout.TEXT_INTEGRITY): personalise.text_integrity_record(number_file, attributes, signer),
        ("text", layout.TEXT_CERTIFICATE): personalise.cv_certificate(
            personalise.TEXT_ISSUER_KEY_ID, subject_id, signer.public_key(), signer),
        ("text", layout.TEXT_BASIC_DATA): personalise.text_basic_data(),
        ("text", layout.TEXT_SIGNED_PUBLIC_KEY): personalise.signed_ap_key_record(text_key, signer),
        ("common", layout.COMMON_CARD_INFO): personalise.common_card_info(card.state.serial, holder),
    }


def _personalise_card_data(
    issuer: IssuerSession, card: VirtualCard, holder: HolderRecord, signer: rsa.RSAPrivateKey
) -> tuple[rsa.RSAPublicKey, str, str]:
    """Write the card-centre data and the card-face codes; returns (surface AP public key, 照合番号B, birth key)."""
    surface_key = issuer.read_public_key("surface", layout.SURFACE_AP_KEY)
    text_key = issuer.read_public_key("text", layout.TEXT_AP_KEY)
    for (applet, fid), content in _holder_files(card, holder, surface_key, text_key, signer).items():
        issuer.store_file(applet, fid, content)
    code_b = personalise.verification_code_b(holder.birth_date, holder.card_expiry, holder.security_code)
    birth_key = personalise.birth_date_key(holder.birth_date)
    for applet, fid, value in (
        ("surface", layout.SURFACE_BIRTH_KEY, birth_key),
        ("surface", layout.SURFACE_CODE_A, holder.my_number),
        ("surface", layout.SURFACE_CODE_B, code_b),
        ("text", layout.TEXT_CODE_A, holder.my_number),
        ("text", layout.TEXT_CODE_B, code_b),
    ):
        issuer.set_pin(applet, fid, value)
    return surface_key, code_b, birth_key


def _install_jpki(
    issuer: IssuerSession,
    holder: HolderRecord,
    pins: CardPins,
    certificates: IssuedCertificates | CertificateCallback | None,
    keygen: KeyGenerator,
) -> IssuedCertificates:
    """What the counter does: the holder's PINs, JPKI keys generated on the card, certificates, commit."""
    for applet, fid, value in (
        ("text", layout.TEXT_PIN, pins.text),
        ("juki", layout.JUKI_PIN, pins.juki),
        ("common", layout.COMMON_PIN, pins.common or pins.juki),
        ("jpki", layout.JPKI_AUTH_PIN, pins.auth),
    ):
        issuer.set_pin(applet, fid, value)
    if pins.sign is not None:
        issuer.set_pin("jpki", layout.JPKI_SIGN_PIN, pins.sign)
    # JPKI keys are generated on the card; certificates come back for exactly those keys; commit activates.
    auth_public = issuer.generate_key("jpki", layout.JPKI_AUTH_KEY)
    sign_public = issuer.generate_key("jpki", layout.JPKI_SIGN_KEY) if pins.sign is not None else None
    if certificates is None:
        certificates = TestCertificateAuthority(keygen).issue
    issued = certificates if isinstance(certificates, IssuedCertificates) else certificates(
        auth_public, sign_public, holder)
    issuer.store_file("jpki", layout.JPKI_AUTH_CA_CERT, issued.auth_ca)
    issuer.put_certificate(layout.JPKI_AUTH_KEY, issued.auth)
    if sign_public is not None:
        if issued.sign is None or issued.sign_ca is None:
            raise ValueError("a sign password was given but no signature certificate was issued")
        issuer.store_file("jpki", layout.JPKI_SIGN_CA_CERT, issued.sign_ca)
        issuer.put_certificate(layout.JPKI_SIGN_KEY, issued.sign)
    issuer.commit()
    return issued


def _build(
    holder: HolderRecord,
    issuer_master_key: IssuerKeyMaterial,
    *,
    pins: CardPins | None,
    certificates: IssuedCertificates | CertificateCallback | None,
    surface_signer: rsa.RSAPrivateKey | None,
    store: CardStore | None,
    keygen: KeyGenerator | None,
    card_id: str | None,
) -> tuple[DeliveredCard, IssuedCertificates | None]:
    """Make the card in memory; it reaches ``store`` only once complete (a failure leaves nothing behind)."""
    holder.validate()
    keygen = keygen or generate_key
    if store is not None and card_id is not None and store.exists(card_id):
        raise FileExistsError(f"card {card_id} already exists in {store.directory}")
    signer = surface_signer or keygen()
    state = manufacture(issuer_master_key, card_id=card_id, keygen=keygen)
    card = VirtualCard(state, keygen=keygen)
    issued: IssuedCertificates | None = None
    with IssuerSession(card, issuer_master_key) as issuer:
        surface_key, code_b, birth_key = _personalise_card_data(issuer, card, holder, signer)
        if pins is not None:
            issued = _install_jpki(issuer, holder, pins, certificates, keygen)
        issuer.set_personalised()
    card.reset()
    if store is not None:
        card = store.add(card.state, keygen=keygen)  # atomic and exclusive: all or nothing
    delivered = DeliveredCard(
        card=card,
        card_id=card.card_id,
        serial=card.state.serial,
        holder=holder,
        verification_code_b=code_b,
        birth_date_key=birth_key,
        surface_signer_public_key=signer.public_key(),
        card_public_key=surface_key,
    )
    return delivered, issued


def deliver_card(
    holder: HolderRecord,
    *,
    issuer_master_key: IssuerKeyMaterial,
    surface_signer: rsa.RSAPrivateKey | None = None,
    store: CardStore | None = None,
    keygen: KeyGenerator | None = None,
    card_id: str | None = None,
) -> DeliveredCard:
    """The card as the card centre delivers it to the municipal counter: manufactured, the surface, text and common
    APs personalised (card face, 照合番号A/B, birth-date key, card info), lifecycle *personalised* — but no JPKI keys,
    no user or CA certificates and none of the holder's PINs (auth, sign, text, 住基, common). Counter issuance sets
    the PINs and generates the keys over the issuer secure channel (``jpki_remote.procedures``)."""
    delivered, _ = _build(holder, issuer_master_key, pins=None, certificates=None, surface_signer=surface_signer,
                          store=store, keygen=keygen, card_id=card_id)
    return delivered


def create_card(
    holder: HolderRecord,
    *,
    issuer_master_key: IssuerKeyMaterial,
    pins: CardPins,
    certificates: IssuedCertificates | CertificateCallback | None = None,
    surface_signer: rsa.RSAPrivateKey | None = None,
    store: CardStore | None = None,
    keygen: KeyGenerator | None = None,
    card_id: str | None = None,
) -> CreatedCard:
    """Manufacture a blank card and personalise it completely over the issuer secure channel (card centre and
    counter in one go). With ``store`` the card is added only once complete: if anything fails (holder data, the
    certificate callback, the card) the store is left as it was. ``card_id`` already in the store: FileExistsError."""
    delivered, issued = _build(holder, issuer_master_key, pins=pins, certificates=certificates,
                               surface_signer=surface_signer, store=store, keygen=keygen, card_id=card_id)
    assert issued is not None
    return CreatedCard(
        card=delivered.card,
        card_id=delivered.card_id,
        serial=delivered.serial,
        holder=holder,
        verification_code_b=delivered.verification_code_b,
        birth_date_key=delivered.birth_date_key,
        certificates=issued,
        surface_signer_public_key=delivered.surface_signer_public_key,
        card_public_key=delivered.card_public_key,
    )
