"""New cards for counter issuance: the card as the card centre delivers it to the municipality (surface, text and
common APs personalised with the holder's data and photo; no JPKI keys, certificates or PINs), into the demo's card
store, with what the counter's agent reports about it (``<data_dir>/demo/delivered/<card_id>.json``: key
diversification data, card key, printed expiry — public facts of the card, no secret).
"""

from __future__ import annotations

import io
import json
import secrets
from datetime import date
from pathlib import Path
from typing import Any

from jpki_remote.demo import residents as people


class DeliveryUnavailable(RuntimeError):
    """The card package cannot deliver a card without JPKI keys (``card.factory.deliver_card`` is missing)."""


def delivered_dir(data_dir: Path) -> Path:
    return data_dir / "demo" / "delivered"


def card_data(data_dir: Path, card_id: str) -> dict[str, str] | None:
    path = delivered_dir(data_dir) / f"{card_id}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _portrait(photo: bytes) -> bytes:
    """The face in ``photo`` as a passport-style portrait (the card centre prints and stores it)."""
    from PIL import Image

    from jpki_remote.demo.live_capture import CaptureError, decode_rgb
    from jpki_remote.proofing.face.card_photo import portrait_crop
    from jpki_remote.proofing.face.engine import FaceEngine

    rgb = decode_rgb(photo)
    boxes = FaceEngine.shared().detect(rgb).boxes
    if len(boxes) != 1:
        raise CaptureError(f"the photo must show exactly one face (found {len(boxes)})")
    buffer = io.BytesIO()
    Image.fromarray(portrait_crop(rgb, boxes[0])).save(buffer, format="PNG")
    return buffer.getvalue()


def deliver(
    data_dir: Path,
    master_key: bytes,
    photo: bytes,
    *,
    name: str,
    address: str,
    birth_date: date,
    sex: int,
    kana: str = "",
    today: date | None = None,
) -> dict[str, Any]:
    """Deliver a new card for this holder into ``<data_dir>/cards``; returns the card's facts for the counter."""
    from cryptography.hazmat.primitives import serialization

    try:
        from jpki_remote.card.factory import deliver_card
    except ImportError:
        raise DeliveryUnavailable("the card package cannot deliver a card without JPKI keys yet") from None
    from jpki_remote.card.personalise import HolderRecord
    from jpki_remote.card.store import CardStore
    from jpki_remote.demo.provision import my_number_with_check_digit

    day = today or date.today()
    years = 10 if (day.year - birth_date.year) >= 20 else 5
    expiry = (
        birth_date.replace(year=day.year + years)
        if not (birth_date.month == 2 and birth_date.day == 29)
        else (date(day.year + years, 2, 28))
    )
    holder = HolderRecord(
        name=name,
        address=address,
        birth_date=birth_date,
        sex=str(sex),
        my_number=my_number_with_check_digit("".join(secrets.choice("0123456789") for _ in range(11))),
        municipality_code=people.MUNICIPALITY_CODE,
        card_expiry=expiry,
        security_code="".join(secrets.choice("0123456789") for _ in range(4)),
        photo=_portrait(photo),
        name_kana=kana or None,
    )
    card_id = "8" + "".join(secrets.choice("0123456789") for _ in range(11))
    made = deliver_card(holder, issuer_master_key=master_key, store=CardStore(data_dir / "cards"), card_id=card_id)
    facts = {
        "card_id": made.card_id,
        "diversification_data": made.kdd.hex(),
        "public_key": made.card_public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ).hex(),
        "expiry": expiry.isoformat(),
        "code_b": made.verification_code_b,
    }
    folder = delivered_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{made.card_id}.json").write_text(json.dumps(facts, indent=2), encoding="utf-8")
    return facts
