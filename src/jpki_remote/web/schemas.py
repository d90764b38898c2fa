"""Request bodies of the JSON API: strict types, unknown fields refused, sizes bounded."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

Hex = Annotated[StrictStr, Field(pattern=r"^[0-9A-Fa-f]*$", max_length=131076)]
B64 = Annotated[StrictStr, Field(max_length=4_000_000)]
StaffId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[\w.@-]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChallengeRequest(Strict):
    terminal_id: Annotated[StrictStr, Field(min_length=1, max_length=32)]


class SessionRequest(Strict):
    terminal_id: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    nonce: Annotated[StrictStr, Field(max_length=128)]  # base64url
    signature: Annotated[StrictStr, Field(max_length=256)]  # base64url Ed25519 signature


class BrowserSessionRequest(Strict):
    code: Annotated[StrictStr, Field(min_length=8, max_length=128)]


class StartRequest(Strict):
    kind: Literal["renewal", "pin_reset", "pin_change", "revocation", "loss_report"]
    target: Annotated[StrictStr, Field(max_length=32)]
    card_id: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    known_pin: Literal["auth_pin", "sign_password"] | None = None


class ExchangeRequest(Strict):
    seq: StrictInt | None = None
    responses: Annotated[list[Hex], Field(max_length=256)] = []  # a card face: up to 128 READ BINARY in one batch
    event: Literal["card_removed", "card_inserted", "retry"] | None = None


class NewPinRequest(ExchangeRequest):
    new_pin: Annotated[StrictStr, Field(min_length=4, max_length=16)]


class FaceRequest(Strict):
    frames: Annotated[list[B64], Field(min_length=1, max_length=40)]


class CodeVerifyRequest(Strict):
    code: Annotated[StrictStr, Field(min_length=1, max_length=32)]


class StaffCheckRequest(Strict):
    staff_id: StaffId | None = None  # ignored: the signed-in member of staff is recorded (web.login)
    documents: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=40)]], Field(min_length=1, max_length=5)
    ]


class CounterStartRequest(Strict):
    kind: Literal["renewal", "pin_reset", "pin_change", "revocation", "loss_report"]
    target: Annotated[StrictStr, Field(max_length=32)]
    card_id: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    staff_id: StaffId | None = None  # ignored: the signed-in member of staff is recorded (web.login)


class RegistryEventRequest(Strict):
    resident_id: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    kind: Literal["address_changed", "moved_out", "name_changed", "sex_changed", "birth_date_corrected", "deceased"]
    changes: dict[Annotated[StrictStr, Field(max_length=32)], StrictStr | StrictInt] = {}
    staff_id: StaffId | None = None  # ignored: the signed-in member of staff is recorded (web.login)
    documents: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=40)]], Field(min_length=1, max_length=5)
    ]


class ContactIn(Strict):
    kind: Literal["email", "mobile"]
    address: Annotated[StrictStr, Field(min_length=3, max_length=320)]


class IssuanceRequest(Strict):
    resident_id: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    card_id: Annotated[StrictStr, Field(min_length=8, max_length=32)]
    diversification_data: Annotated[StrictStr, Field(pattern=r"^[0-9A-Fa-f]{2,64}$")]
    card_public_key: Annotated[StrictStr, Field(pattern=r"^[0-9A-Fa-f]{2,2048}$")] | None = None
    card_expiry: date
    staff_id: StaffId | None = None  # ignored: the signed-in member of staff is recorded (web.login)
    documents: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=40)]], Field(min_length=1, max_length=5)
    ]
    photo: B64 | None = None
    contacts: Annotated[list[ContactIn], Field(max_length=5)] = []


class UnlockRequest(Strict):
    """Counter staff lifting a lockout: who, and which ID documents they checked (types only, never numbers)."""

    staff_id: StaffId | None = None  # ignored: the signed-in member of staff is recorded (web.login)
    documents: Annotated[
        list[Annotated[StrictStr, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z_.-]+$")]],
        Field(min_length=1, max_length=5),
    ]
