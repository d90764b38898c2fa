"""A small world for procedure (and web) tests: real CA (file key store), real virtual cards personalised over secure
messaging, real security codes (development outbox), real audit log, the registry — all on one database."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from jpki_remote.audit.log import AuditLog
from jpki_remote.audit.signing import signer_from_settings
from jpki_remote.ca.authority import CertificateAuthority
from jpki_remote.ca.holder import HolderIdentity, Sex
from jpki_remote.ca.keystore import open_keystore
from jpki_remote.ca.setup import setup_authorities
from jpki_remote.card import layout
from jpki_remote.card.factory import CardPins, IssuedCertificates, create_card, test_holder
from jpki_remote.card.issuer import IssuerSession
from jpki_remote.card.virtual import VirtualCard
from jpki_remote.config import Settings
from jpki_remote.procedures.engine import Engine
from jpki_remote.procedures.legal_flow import LegalFlow
from jpki_remote.procedures.ports import AuditLogPort, Ports, ProofingNotices, StaticIssuerKeys
from jpki_remote.procedures.surface import sign_card_surface, surface_key
from jpki_remote.proofing.codes import SecurityCodes
from jpki_remote.proofing.limits import Limits
from jpki_remote.registry import service as registry
from jpki_remote.store import Database
from jpki_remote.terminal.agent import AgentCore, ScriptedPinPad, drive

PINS = {"auth_pin": "1234", "sign_password": "ABC123", "residence_pin": "5678", "text_pin": "2468"}


@dataclass
class IssuedCard:
    card: VirtualCard
    card_id: str
    resident_id: str
    code_b: str
    auth_serial: int
    sign_serial: int | None


@dataclass
class World:
    db: Database
    settings: Settings
    ca: CertificateAuthority
    master: bytes
    ports: Ports
    audit: AuditLog
    photo: bytes
    cards: list[IssuedCard] = field(default_factory=list)

    def engine(self) -> Engine:
        """A fresh engine object each call: tests use it to show nothing lives in memory between calls."""
        return Engine(self.db, self.ports)

    def issue_card(self, *, birthday_in_days: int = 30, with_contact: bool = True, **holder: Any) -> IssuedCard:
        """A resident with a card whose certificates expire in ``birthday_in_days`` (renewal window open)."""
        today = date.today()
        birthday = today + timedelta(days=birthday_in_days)
        if birthday.month == 2 and birthday.day == 29:
            birthday += timedelta(days=1)
        birth_date = birthday.replace(year=birthday.year - 40)
        issued_at = datetime.now(UTC) - timedelta(days=5 * 365 - 60)
        card_expiry = today + timedelta(days=5 * 365)
        with self.db.session() as s:
            if s.get(registry.Municipality, "131016") is None:
                registry.create_municipality(s, "13101", "千代田区", "東京都")
            resident = registry.add_resident(
                s,
                "131016",
                family_name=holder.get("family_name", "番号"),
                given_name="花子",
                address="東京都千代田区霞が関２丁目１番２号",
                birth_date=birth_date,
                sex=2,
            )
            resident_id = resident.id
            if with_contact:
                registry.add_contact(s, resident_id, "email", f"holder{len(self.cards)}@example.jp", verified=True)
        card_id = "".join(secrets.choice("0123456789") for _ in range(15))
        identity = HolderIdentity(
            holder_ref=card_id,
            municipality_code="131016",
            birth_date=birth_date,
            name="番号\u3000花子",
            sex=Sex.FEMALE,
            address="東京都千代田区霞が関２丁目１番２号",
            prefecture="東京都",
            city="千代田区",
        )
        issued: dict[str, Any] = {}

        def certificates(auth: Any, sign: Any, _holder: Any) -> IssuedCertificates:
            pair = self.ca.issue_pair(f"init-{card_id}", identity, auth, sign, card_expiry, issued_at=issued_at)
            issued["pair"] = pair
            der = serialization.Encoding.DER
            return IssuedCertificates(
                auth=pair.authentication.der,
                auth_ca=self.ca.authority_certificate("authentication").public_bytes(der),
                sign=pair.signature.der if pair.signature else None,
                sign_ca=self.ca.authority_certificate("signature").public_bytes(der),
            )

        made = create_card(
            test_holder(self.photo, birth_date=birth_date, card_expiry=card_expiry),
            issuer_master_key=self.master,
            pins=CardPins(
                auth=PINS["auth_pin"], sign=PINS["sign_password"], text=PINS["text_pin"], juki=PINS["residence_pin"]
            ),
            certificates=certificates,
            card_id=card_id,
        )
        # the card centre signs the card face with its key from the CA key store (as issuance at the counter does)
        sign_card_surface(made.card.transmit, self.master, made.verification_code_b, self.ports.surface)
        made.card.reset()
        with IssuerSession(made.card, self.master) as issuer:
            surface = issuer.read_public_key("surface", layout.SURFACE_AP_KEY)
        made.card.reset()
        pair = issued["pair"]
        with self.db.session() as s:
            registry.register_card(
                s,
                card_id=card_id,
                resident_id=resident_id,
                card_expiry=card_expiry,
                diversification_data=made.card.state.kdd,
                issuer_key_version=0,
                card_public_key_der=surface.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            )
            registry.set_current_certificates(
                s,
                card_id,
                auth_serial=format(pair.authentication.serial, "x"),
                sign_serial=format(pair.signature.serial, "x") if pair.signature else None,
                facts_version=1,
            )
        result = IssuedCard(
            made.card,
            card_id,
            resident_id,
            made.verification_code_b,
            pair.authentication.serial,
            pair.signature.serial if pair.signature else None,
        )
        self.cards.append(result)
        return result


def run_agent(
    engine: Engine, reply: dict[str, Any], card: VirtualCard, pinpad: ScriptedPinPad, terminal_id: str | None = "t-test"
) -> dict[str, Any]:
    """The real agent logic, calling the engine in-process instead of over HTTP."""
    procedure_id = reply["id"]

    def call(body: dict[str, Any]) -> dict[str, Any]:
        return engine.exchange(
            procedure_id,
            terminal_id,
            seq=body.get("seq"),
            responses=[bytes.fromhex(r) for r in body.get("responses", [])],
            new_pin=body.get("new_pin"),
            event=body.get("event"),
        )

    return drive(call, AgentCore(card.transmit, pinpad), reply)


def make_world(db: Database, tmp_path: Path, faces_dir: Path) -> World:
    settings = Settings(data_dir=tmp_path / "data", delivery="outbox", proofing_secret=secrets.token_hex(32))
    keystore = open_keystore(settings)
    setup_authorities(db, keystore, settings)
    ca = CertificateAuthority(db, keystore, settings)
    master = secrets.token_bytes(32)
    audit = AuditLog(db, signer_from_settings(settings))
    ports = Ports(
        ca=ca,
        issuer_keys=StaticIssuerKeys(master),
        face=None,
        codes=SecurityCodes(db, settings),
        notices=ProofingNotices(db, settings),
        audit=AuditLogPort(audit),
        legal_flow=LegalFlow(db, ca, tmp_path / "messaging"),
        limits=Limits.from_settings(settings, db, audit=audit),
        surface=surface_key(keystore),
    )
    photo = sorted((faces_dir / "amy_adams").iterdir())[0].read_bytes()
    return World(db, settings, ca, master, ports, audit, photo)


def capture_frames(photo: Path, actions: list[str]) -> list[bytes]:
    """JPEG frames of a live capture: the person in ``photo`` performing the liveness ``actions`` in order."""
    import sys

    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proofing" / "liveness"))
    import sequences

    rgb = np.asarray(Image.open(photo).convert("RGB"))
    return [sequences.to_jpeg(frame) for frame in sequences.perform(sequences.portrait_frame(rgb), actions)]


def card_photo(path: Path) -> bytes:
    """A passport-style portrait as enrolled at the counter (the card stores it as greyscale JPEG 2000)."""
    import numpy as np
    from PIL import Image

    from jpki_remote.proofing.face.card_photo import card_photo_from
    from jpki_remote.proofing.face.engine import FaceEngine

    rgb = np.asarray(Image.open(path).convert("RGB"))
    return card_photo_from(rgb, FaceEngine.shared().detect(rgb).boxes[0])


def enrol_photo(world: World, card_id: str, photo: Path) -> None:
    """Enrol ``photo`` for the card as issuance at the counter does (its encoding only; needs ``ports.face``)."""
    face = world.ports.face
    assert face is not None
    encoding = face.encode_reference(card_photo(photo))
    assert encoding is not None
    with world.db.session() as s:
        registry.enrol_face(s, card_id, encoding, face.model)


def code_from_outbox(world: World) -> str:
    """The security code of the latest message in the development outbox (what the demo shows on screen)."""
    import re

    from sqlalchemy import select

    from jpki_remote.proofing.models import DevOutboxMessage

    with world.db.session() as s:
        body = s.scalars(select(DevOutboxMessage.body).order_by(DevOutboxMessage.id.desc())).first()
    match = re.search(r"\b(\d{6})\b", body or "")
    assert match, body
    return match.group(1)
