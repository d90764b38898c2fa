"""Set up (idempotently) everything the demo needs in one data directory.

The CAs (``ca setup``), the municipality 港区, its residents with personalised virtual cards in
``<data_dir>/cards`` (certificates from the project's CAs, issued and backdated so each resident is in their
situation: near expiry, expired, a locked PIN, under 15), registered contacts, the enrolled face encodings, one
resident still waiting for a card (the counter issuance), and three registered terminals (a kiosk, the holder's app,
a counter terminal) with their Ed25519 keys in ``<data_dir>/demo/terminals``.

What was created is recorded in ``<data_dir>/demo/manifest.json`` — identifiers only (card ids, resident ids,
terminal ids, the 照合番号B printed on each demo card face); never a PIN, a key or a code. Running again reuses every
resident whose card and registry rows still exist, and creates only what is missing.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from jpki_remote.config import Settings
from jpki_remote.demo import residents as people
from jpki_remote.demo.residents import DEMO_PINS, ResidentSpec, Situation
from jpki_remote.store import Database

log = logging.getLogger(__name__)
MANIFEST_VERSION = 1
TERMINALS = (("kiosk", "デモ キオスク (コンビニ)"), ("app", "デモ 利用者アプリ"), ("counter", "デモ 港区役所 窓口"))


class DemoSetupError(RuntimeError):
    """The demo cannot be set up (no faces folder, a photo without one clear face, a data directory in use, …)."""


@dataclass
class DemoCard:
    key: str
    card_id: str
    resident_id: str
    code_b: str  # 照合番号B of this demo card (printed on the card face)
    auth_serial: str
    sign_serial: str | None
    card_expiry: str
    certificate_last_day: str


@dataclass
class DemoTerminal:
    kind: str
    name: str
    terminal_id: str
    key_file: str


@dataclass
class Manifest:
    version: int = MANIFEST_VERSION
    municipality_code: str = ""
    cards: dict[str, DemoCard] = field(default_factory=dict)
    terminals: dict[str, DemoTerminal] = field(default_factory=dict)
    waiting_resident_id: str | None = None

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("version") != MANIFEST_VERSION:
                return cls()
            return cls(
                version=MANIFEST_VERSION,
                municipality_code=str(raw.get("municipality_code", "")),
                cards={k: DemoCard(**v) for k, v in raw.get("cards", {}).items()},
                terminals={k: DemoTerminal(**v) for k, v in raw.get("terminals", {}).items()},
                waiting_resident_id=raw.get("waiting_resident_id"),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise DemoSetupError(f"{path} is not a demo manifest ({exc}); use --fresh or another --data-dir") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2), encoding="utf-8")
        temporary.replace(path)


@dataclass
class DemoEnvironment:
    """Everything set up, for the server, the agents and the scripted run."""

    settings: Settings
    db: Database
    ca: Any  # jpki_remote.ca.authority.CertificateAuthority
    keystore: Any
    master_key: bytes
    cards_dir: Path
    faces: Path
    manifest: Manifest
    created: list[str]
    reused: list[str]

    def card(self, key: str) -> DemoCard:
        return self.manifest.cards[key]

    def close(self) -> None:
        self.ca.close()
        self.keystore.close()
        self.db.dispose()


def manifest_path(data_dir: Path) -> Path:
    return data_dir / "demo" / "manifest.json"


def my_number_with_check_digit(eleven: str) -> str:
    """A 12-digit 個人番号 with its check digit (番号法施行令第8条) — random digits, for demo cards only."""
    digits = [int(c) for c in reversed(eleven)]
    total = sum(p * (n + 1 if n <= 6 else n - 5) for n, p in enumerate(digits, start=1))
    remainder = total % 11
    return eleven + str(0 if remainder <= 1 else 11 - remainder)


def _random_digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


# ------------------------------------------------------------------------------------------------------ set-up
_setup_lock = threading.Lock()


def provision(
    settings: Settings,
    faces: Path,
    *,
    progress: Callable[[str], None] | None = None,
    today: date | None = None,
    enrol_faces: bool = True,
) -> DemoEnvironment:
    """Create or reuse the demo world in ``settings.data_dir``; returns it opened (call ``close()``).

    ``enrol_faces`` also enrols each card photo's face encoding in the registry (what the counter does at issuance;
    needed for a loss report online, without the card). The scripted run skips it to save time."""
    from jpki_remote.ca.authority import CertificateAuthority
    from jpki_remote.ca.keystore import open_keystore
    from jpki_remote.ca.setup import setup_authorities
    from jpki_remote.issuer_keys import issuer_keys_from_settings

    say = progress or (lambda _m: None)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _setup_lock:
        db = Database(settings.effective_database_url)
        db.create_schema()
        keystore = open_keystore(settings)
        say("認証局 / certification authorities …")
        setup_authorities(db, keystore, settings)
        ca = CertificateAuthority(db, keystore, settings)
        master = issuer_keys_from_settings(settings).master_key(0)  # the server's issuer keys
        path = manifest_path(settings.data_dir)
        manifest = Manifest.load(path)
        env = DemoEnvironment(
            settings, db, ca, keystore, master, settings.data_dir / "cards", faces, manifest, created=[], reused=[]
        )
        try:
            manifest.municipality_code = _municipality(db)
            for spec in people.RESIDENTS:
                if _card_usable(env, spec.key):
                    env.reused.append(spec.key)
                    continue
                say(f"住民とカード / resident and card: {spec.name} ({spec.situation.value})")
                manifest.cards[spec.key] = _issue_card(env, spec, today or date.today(), enrol_faces)
                env.created.append(spec.key)
                manifest.save(path)
            manifest.waiting_resident_id = _waiting_resident(env)
            _terminals(env)
            _staff(env)
            manifest.save(path)
        except BaseException:
            env.close()
            raise
    return env


def _municipality(db: Database) -> str:
    from jpki_remote.registry import service as registry

    code6 = registry.normalise_municipality_code(people.MUNICIPALITY_CODE)
    with db.session() as session:
        if session.get(registry.Municipality, code6) is None:
            registry.create_municipality(session, people.MUNICIPALITY_CODE, people.MUNICIPALITY_NAME, people.PREFECTURE)
    return code6


def _card_usable(env: DemoEnvironment, key: str) -> bool:
    from jpki_remote.card.store import CardStore
    from jpki_remote.registry import service as registry

    entry = env.manifest.cards.get(key)
    if entry is None or not CardStore(env.cards_dir).exists(entry.card_id):
        return False
    with env.db.session() as session:
        return registry.get_card(session, entry.card_id) is not None


def _portrait_png(photo: Path) -> bytes:
    """A passport-style portrait of the one face in ``photo`` (the card stores it as greyscale JPEG 2000)."""
    from PIL import Image

    from jpki_remote.demo.live_capture import CaptureError, decode_rgb
    from jpki_remote.proofing.face.card_photo import portrait_crop
    from jpki_remote.proofing.face.engine import FaceEngine

    try:
        rgb = decode_rgb(photo.read_bytes())
    except (OSError, CaptureError) as exc:
        raise DemoSetupError(f"cannot read the photo {photo}: {exc}") from None
    boxes = FaceEngine.shared().detect(rgb).boxes
    if len(boxes) != 1:
        raise DemoSetupError(f"{photo} must show exactly one face (found {len(boxes)})")
    buffer = io.BytesIO()
    Image.fromarray(portrait_crop(rgb, boxes[0])).save(buffer, format="PNG")
    return buffer.getvalue()


def _issue_card(env: DemoEnvironment, spec: ResidentSpec, today: date, enrol_face: bool) -> DemoCard:
    from cryptography.hazmat.primitives import serialization

    from jpki_remote.ca.holder import HolderIdentity, Sex
    from jpki_remote.card import layout
    from jpki_remote.card.factory import CardPins, IssuedCertificates, create_card
    from jpki_remote.card.issuer import IssuerSession
    from jpki_remote.card.personalise import HolderRecord
    from jpki_remote.card.store import CardStore
    from jpki_remote.procedures.ports import ProofingFace
    from jpki_remote.procedures.surface import sign_card_surface, surface_key
    from jpki_remote.registry import service as registry

    photo_file = people.photo_path(env.faces, spec, "card")
    if not photo_file.is_file():
        raise DemoSetupError(f"the faces folder has no {spec.person}/{spec.card_photo} ({env.faces})")
    portrait = _portrait_png(photo_file)
    dates = people.card_dates(spec, today)
    card_id = _random_digits(12)
    minor = spec.situation is Situation.MINOR
    holder = HolderRecord(
        name=spec.name,
        address=spec.address,
        birth_date=dates.birth_date,
        sex=str(spec.sex),
        my_number=my_number_with_check_digit(_random_digits(11)),
        municipality_code=people.MUNICIPALITY_CODE,
        card_expiry=dates.card_expiry,
        security_code=_random_digits(4),
        photo=portrait,
        name_kana=spec.kana,
    )
    identity = HolderIdentity(
        holder_ref=card_id,
        municipality_code=people.MUNICIPALITY_CODE,
        birth_date=dates.birth_date,
        name=spec.name,
        sex=Sex.MALE if spec.sex == 1 else Sex.FEMALE,
        address=spec.address,
        prefecture=people.PREFECTURE,
        city=people.MUNICIPALITY_NAME,
    )
    issued: dict[str, Any] = {}

    def certificates(auth: Any, sign: Any, _holder: Any) -> IssuedCertificates:
        pair = env.ca.issue_pair(f"demo-{card_id}", identity, auth, sign, dates.card_expiry, issued_at=dates.issued_at)
        issued["pair"] = pair
        der = serialization.Encoding.DER
        return IssuedCertificates(
            auth=pair.authentication.der,
            auth_ca=env.ca.authority_certificate("authentication").public_bytes(der),
            sign=pair.signature.der if pair.signature else None,
            sign_ca=env.ca.authority_certificate("signature").public_bytes(der) if pair.signature else None,
        )

    store = CardStore(env.cards_dir)
    pins = CardPins(
        auth=DEMO_PINS["auth_pin"],
        sign=None if minor else DEMO_PINS["sign_password"],
        text=DEMO_PINS["text_pin"],
        juki=DEMO_PINS["residence_pin"],
    )
    try:
        made = create_card(
            holder, issuer_master_key=env.master_key, pins=pins, certificates=certificates, store=store, card_id=card_id
        )
        # the card centre signs the card face with its key in the CA key store (the server checks it)
        sign_card_surface(made.card.transmit, env.master_key, made.verification_code_b, surface_key(env.keystore))
        made.card.reset()
        with IssuerSession(made.card, env.master_key) as issuer:
            surface = issuer.read_public_key("surface", layout.SURFACE_AP_KEY)
        made.card.reset()
        if spec.locked:
            lock_pin(made.card, spec.locked)
    except BaseException:
        if store.exists(card_id):
            store.delete(card_id)  # a half-made card must not stay behind
        raise
    pair = issued["pair"]
    auth_serial = format(pair.authentication.serial, "x")
    sign_serial = format(pair.signature.serial, "x") if pair.signature else None
    encoding = ProofingFace(env.settings).encode_reference(portrait) if enrol_face else None
    with env.db.session() as session:
        resident = registry.add_resident(
            session,
            people.MUNICIPALITY_CODE,
            family_name=spec.family_name,
            given_name=spec.given_name,
            address=spec.address,
            birth_date=dates.birth_date,
            sex=spec.sex,
            name_kana=spec.kana,
            today=today,
        )
        registry.register_card(
            session,
            card_id=card_id,
            resident_id=resident.id,
            card_expiry=dates.card_expiry,
            diversification_data=made.card.state.kdd,
            issuer_key_version=0,
            card_public_key_der=surface.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        registry.set_current_certificates(
            session, card_id, auth_serial=auth_serial, sign_serial=sign_serial, facts_version=resident.facts_version
        )
        registry.add_contact(session, resident.id, "email", spec.email, verified=True)
        registry.add_contact(session, resident.id, "mobile", demo_mobile(spec.key), verified=True)
        if encoding is not None:
            registry.enrol_face(session, card_id, encoding, "dlib-resnet-v1")
        resident_id = resident.id
    return DemoCard(
        key=spec.key,
        card_id=card_id,
        resident_id=resident_id,
        code_b=made.verification_code_b,
        auth_serial=auth_serial,
        sign_serial=sign_serial,
        card_expiry=dates.card_expiry.isoformat(),
        certificate_last_day=dates.certificate_last_day.isoformat(),
    )


def demo_mobile(key: str) -> str:
    """A stable, obviously fictitious mobile number per demo resident (090-0000-xxxx)."""
    number = sum(ord(c) for c in key) % 10000
    return f"0900000{number:04d}"[:11]


PIN_FIDS = {
    "auth_pin": ("jpki", 0x0018),
    "sign_password": ("jpki", 0x001B),
    "residence_pin": ("juki", 0x001C),
    "text_pin": ("text", 0x0011),
}


def lock_pin(card: Any, kind: str) -> None:
    """Type a wrong PIN until the card blocks it (as a holder who forgot it would)."""
    from jpki_remote.card.client import CardClient, CardError, PinBlockedError

    applet, fid = PIN_FIDS[kind]
    wrong = "ZZZZZZ9" if kind == "sign_password" else "0000"
    client = CardClient(card)
    client.select_ap(applet)
    for _ in range(8):
        try:
            client.verify(fid, wrong)
        except PinBlockedError:
            break
        except CardError:
            continue
    else:
        raise DemoSetupError(f"the {kind} did not block")
    card.reset()


def _waiting_resident(env: DemoEnvironment) -> str:
    """A registered resident with no card yet (new issuance at the counter)."""
    from jpki_remote.registry import service as registry

    existing = env.manifest.waiting_resident_id
    with env.db.session() as session:
        if existing and session.get(registry.Resident, existing) is not None:
            return existing
        waiting = people.WAITING
        resident = registry.add_resident(
            session,
            people.MUNICIPALITY_CODE,
            family_name=waiting.family_name,
            given_name=waiting.given_name,
            address=waiting.address,
            birth_date=waiting.birth_date,
            sex=waiting.sex,
            name_kana=waiting.kana,
        )
        return resident.id


def _staff(env: DemoEnvironment) -> None:
    """The counter's demo member of staff (when the server has staff sign-in)."""
    try:
        from jpki_remote.terminal import staff
    except ImportError:
        return
    with env.db.session() as session:
        if staff.get_staff(session, people.DEMO_STAFF_ID) is None:
            staff.add_staff(
                session,
                people.DEMO_STAFF_ID,
                people.DEMO_STAFF_PASSWORD,
                display_name="港区 窓口 デモ職員",
                municipality_code=env.manifest.municipality_code,
            )


def _terminals(env: DemoEnvironment) -> None:
    from jpki_remote.terminal import service as terminals
    from jpki_remote.terminal.keys import load_or_create_key, public_bytes
    from jpki_remote.terminal.models import Terminal, TerminalStatus

    folder = env.settings.data_dir / "demo" / "terminals"
    for kind, name in TERMINALS:
        key_file = folder / f"{kind}.key"
        key = load_or_create_key(key_file)
        known = env.manifest.terminals.get(kind)
        with env.db.session() as session:
            row = session.get(Terminal, known.terminal_id) if known else None
            if row is not None and row.status is TerminalStatus.ACTIVE and row.public_key == public_bytes(key):
                continue
            terminal = terminals.register_terminal(
                session,
                kind=kind,
                name=name,
                public_key=public_bytes(key),
                municipality_code=env.manifest.municipality_code if kind == "counter" else None,
            )
            env.manifest.terminals[kind] = DemoTerminal(kind, name, terminal.id, str(key_file))
