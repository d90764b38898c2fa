"""The demo municipality and its residents: who they are, what state their card is in, and whose photo they wear.

DEMO DATA ONLY. The PINs below are published demo credentials (printed by ``jpki-remote demo`` and in the README)
for virtual cards in a demo data directory; no real holder has them.

Each resident exercises one situation a person can walk through in the browser:

* certificates near expiry (inside the 3-month renewal window) → renewal at the kiosk or online;
* certificates already expired while the card is still valid → renewal (allowed by the policy);
* each of the four PINs locked → PIN reset at the kiosk / online / counter;
* certificates valid for years → PIN change, revocation, loss report, registry events;
* a holder under 15 → no signature certificate on the card.

The face photos come from a folder of real photos (one sub-folder per person): the card photo from one picture,
the "camera" from another picture of the same person where the folder has two (so the face match compares two
different photographs, as at a real kiosk). The residents who pass a face check in the scripted run wear the photos
whose synthetic live capture (:mod:`jpki_remote.demo.live_capture`) passes liveness for every challenge order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path

MUNICIPALITY_CODE = "13103"  # 港区 (全国地方公共団体コード, 5 digits; the registry adds the check digit)
MUNICIPALITY_NAME = "港区"
PREFECTURE = "東京都"
ADDRESS_PREFIX = "東京都港区"

# Published demo credentials (every demo card starts with these).
DEMO_PINS = {"auth_pin": "1234", "sign_password": "DEMO2025", "residence_pin": "5678", "text_pin": "2468"}
# The counter's demo member of staff (sign-in at the counter screen).
DEMO_STAFF_ID = "demo-staff-01"
DEMO_STAFF_PASSWORD = "minato-demo-counter"  # noqa: S105 - a published demo credential
# New PINs the scripted run sets (and a person may use in the browser).
NEW_PINS = {"auth_pin": "9753", "sign_password": "NEWPASS9", "residence_pin": "1357", "text_pin": "8642"}
PIN_LABELS = {
    "auth_pin": ("利用者証明用暗証番号", "auth PIN"),
    "sign_password": ("署名用パスワード", "sign password"),
    "residence_pin": ("住民基本台帳用暗証番号", "residence PIN"),
    "text_pin": ("券面事項入力補助用暗証番号", "text PIN"),
}


class Situation(StrEnum):
    NEAR_EXPIRY = "near_expiry"  # certificates expire in ~45 days: renewal window open
    EXPIRED = "expired"  # certificates expired ~40 days ago, card still valid
    VALID = "valid"  # certificates valid for years
    MINOR = "minor"  # holder under 15: no signature certificate


@dataclass(frozen=True)
class ResidentSpec:
    key: str  # stable demo key (manifest, scripted run)
    family_name: str
    given_name: str
    kana: str
    sex: int  # 1 male, 2 female
    age: int
    person: str  # sub-folder of the faces folder
    card_photo: str  # file in that folder used for the card photo (surface AP) and enrolment
    camera_photo: str  # file the synthetic live capture is built from
    situation: Situation
    locked: str | None = None  # a PIN kind that is locked (blocked) on the card
    street: str = "芝公園１丁目５番２５号"

    @property
    def name(self) -> str:
        return f"{self.family_name}\u3000{self.given_name}"

    @property
    def address(self) -> str:
        return ADDRESS_PREFIX + self.street

    @property
    def email(self) -> str:
        return f"{self.key}@demo.jpki-remote.example"


def _spec(
    key: str,
    family: str,
    given: str,
    kana: str,
    sex: int,
    age: int,
    photos: str,
    situation: Situation,
    locked: str | None = None,
    street: str = "芝公園１丁目５番２５号",
) -> ResidentSpec:
    person, card_photo, camera_photo = photos.split("/")
    return ResidentSpec(key, family, given, kana, sex, age, person, card_photo, camera_photo, situation, locked, street)


# photos: "<person>/<card photo>/<camera photo>" — the camera is the synthetic live capture of the scripted run
RESIDENTS: tuple[ResidentSpec, ...] = (
    _spec("minato", "港", "一郎", "ミナト　イチロウ", 1, 63, "obama/3.jpg/1.jpg", Situation.NEAR_EXPIRY),
    _spec(
        "shiba",
        "芝",
        "健太",
        "シバ　ケンタ",
        1,
        37,
        "kit_harington/3.jpg/1.jpg",
        Situation.EXPIRED,
        street="芝５丁目３６番７号",
    ),
    _spec(
        "azabu",
        "麻布",
        "誠",
        "アザブ　マコト",
        1,
        44,
        "john_lennon/2.jpg/1.jpg",
        Situation.NEAR_EXPIRY,
        locked="sign_password",
        street="麻布十番２丁目３番１号",
    ),
    _spec(
        "akasaka",
        "赤坂",
        "勇",
        "アカサカ　イサム",
        1,
        61,
        "steve_carell/1.jpg/1.jpg",
        Situation.VALID,
        locked="auth_pin",
        street="赤坂９丁目７番１号",
    ),
    _spec(
        "aoyama",
        "青山",
        "さくら",
        "アオヤマ　サクラ",
        2,
        38,
        "rose_leslie/2.jpg/1.jpg",
        Situation.VALID,
        locked="residence_pin",
        street="北青山３丁目６番１号",
    ),
    _spec(
        "roppongi",
        "六本木",
        "英二",
        "ロッポンギ　エイジ",
        1,
        45,
        "lin_manuel_miranda/1.png/1.png",
        Situation.VALID,
        locked="text_pin",
        street="六本木６丁目１０番１号",
    ),
    _spec(
        "takanawa",
        "高輪",
        "譲",
        "タカナワ　ジョウ",
        1,
        79,
        "eric_clapton/2.jpg/1.jpg",
        Situation.VALID,
        street="高輪３丁目１３番１号",
    ),
    _spec(
        "shirokane",
        "白金",
        "亜美",
        "シロカネ　アミ",
        2,
        50,
        "amy_adams/1.jpg/1.jpg",
        Situation.VALID,
        street="白金台５丁目２１番１号",
    ),
    _spec(
        "daiba",
        "台場",
        "翔",
        "ダイバ　ショウ",
        1,
        81,
        "biden/2.jpg/1.jpg",
        Situation.VALID,
        street="台場１丁目７番１号",
    ),
    _spec(
        "mita",
        "三田",
        "蓮",
        "ミタ　レン",
        1,
        11,
        "alex_lacamoire/2.jpg/1.jpg",
        Situation.MINOR,
        street="三田２丁目１５番４５号",
    ),
)


@dataclass(frozen=True)
class WaitingResident:
    """A resident in the registry with no card yet: new issuance at the counter (also "your own card")."""

    key: str = "shibaura"
    family_name: str = "芝浦"
    given_name: str = "大輔"
    kana: str = "シバウラ　ダイスケ"
    sex: int = 1
    birth_date: date = date(1995, 4, 1)
    address: str = ADDRESS_PREFIX + "芝浦３丁目１番１号"
    email: str = "shibaura@demo.jpki-remote.example"
    # the photo the card centre puts on the new card in the scripted run (a different picture of a person who is
    # also a demo resident: every photo in the folder whose synthetic capture passes liveness is in use)
    person: str = "obama"
    photo: str = "2.jpg"

    @property
    def name(self) -> str:
        return f"{self.family_name}\u3000{self.given_name}"


WAITING = WaitingResident()


def resident(key: str) -> ResidentSpec:
    for spec in RESIDENTS:
        if spec.key == key:
            return spec
    raise KeyError(key)


# ---- dates ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CardDates:
    birth_date: date
    issued_at: datetime  # when the certificates (and the card) were issued
    card_expiry: date
    certificate_last_day: date  # the certificates' last valid day (the 5th birthday after issuance)


def _on_year(day: date, year: int) -> date:
    return day.replace(year=year) if not (day.month == 2 and day.day == 29) else date(year, 2, 28)


def card_dates(spec: ResidentSpec, today: date) -> CardDates:
    """Birth date, issuance and expiry that put ``spec`` into its situation on ``today``.

    Certificates run to the 5th birthday after issuance; an adult's card to the 10th, a minor's to the 5th. The
    certificate's last day is a birthday, so choosing the birthday fixes the situation.
    """
    offset = {
        Situation.NEAR_EXPIRY: 45,  # inside the 3-month window
        Situation.EXPIRED: -40,  # expired, card valid
        Situation.VALID: 400 + 30 * (len(spec.key) % 7),
        Situation.MINOR: 400,
    }[spec.situation]
    birthday = today + timedelta(days=offset)  # the birthday on which the certificates end
    if birthday.month == 2 and birthday.day == 29:
        birthday += timedelta(days=1)
    if spec.situation in (Situation.VALID, Situation.MINOR):
        # certificates end on a birthday 2–4 years ahead: issued 1–3 years ago
        years_ahead = 2 + len(spec.key) % 3
        last_day = _on_year(birthday, birthday.year + years_ahead - 1)
    else:
        last_day = birthday
    issued_on = _on_year(last_day, last_day.year - 5) + timedelta(days=30)
    birth_date = _on_year(last_day, today.year - spec.age)
    card_years = 5 if spec.age < 20 else 10
    card_expiry = _on_year(last_day, last_day.year + card_years - 5)
    issued_at = datetime.combine(issued_on, time(10, 0)).astimezone()
    return CardDates(birth_date, issued_at, card_expiry, last_day)


# ---- photos -------------------------------------------------------------------------------------------------------
FACES_ENV = "JPKI_DEMO_FACES"


def faces_dir(explicit: Path | str | None = None) -> Path | None:
    """The faces folder: ``explicit`` (--faces), else ``$JPKI_DEMO_FACES``, else ``../shared/data/faces`` beside the
    checkout (or beside the current directory). None when none exists."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit).expanduser())
    elif os.environ.get(FACES_ENV):
        candidates.append(Path(os.environ[FACES_ENV]).expanduser())
    else:
        checkout = Path(__file__).resolve().parents[3]  # src/jpki_remote/demo/residents.py -> the checkout
        candidates += [checkout.parent / "shared" / "data" / "faces", Path.cwd().parent / "shared" / "data" / "faces"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def photo_path(faces: Path, spec: ResidentSpec, which: str) -> Path:
    return faces / spec.person / (spec.card_photo if which == "card" else spec.camera_photo)
