"""The audit detail validator keeps PINs, codes and images out of the log."""

from __future__ import annotations

import base64

import pytest

from jpki_remote.audit import AuditEvent, DetailRejected
from jpki_remote.audit.detail import validate_detail


@pytest.mark.parametrize(
    "detail",
    [
        {"pin": "1234"},
        {"new_pin": 1},
        {"NewPin": 1},
        {"security_code": "x"},
        {"otp": "x"},
        {"password": "x"},
        {"photo": "x"},
        {"face_image": "x"},
        {"selfie": []},
        {"nested": {"pin": 1}},
        {"list": [{"signPassword": "x"}]},
        {"entered": "123456"},
        {"entered": "１２３４"},
        {"entered": "123 456"},
        {"note": "data:image/png;base64,AAAA"},
        {"blob": base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(40)).decode()},
        {"blob": base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(40)).decode()},
        {"big": "x" * 5000},
        {"deep": {"a": {"b": {"c": {"d": 1}}}}},
        {"nan": float("nan")},
        {"raw": b"bytes"},
        {1: "non-string key"},
        {"": 1},
    ],
)
def test_refused(detail: dict) -> None:
    with pytest.raises(DetailRejected):
        validate_detail(detail)


@pytest.mark.parametrize(
    "detail",
    [
        {},
        {"pin_kind": "auth", "code_tries_left": 3, "code_channel": "sms"},
        {"score": 0.31, "threshold": 0.38, "face_quality": "ok"},
        {"serial_hex": "1a2b3c", "certificate_serial": "00ff"},
        {"valid_until": "2031-04-01", "contact": "090-****-5678"},
        {"reason": "superseded", "attempts": 2, "ok": True, "none": None},
        {"key_label": "sig-ca-2026", "key_fingerprint": "ab:cd"},
        {"message": "名前の変更"},
    ],
)
def test_accepted(detail: dict) -> None:
    text = validate_detail(detail)
    assert text.startswith("{")


def test_canonical_text_is_stable() -> None:
    assert validate_detail({"b": 1, "a": "名"}) == '{"a":"名","b":1}'


@pytest.mark.parametrize(
    "event",
    [
        AuditEvent(actor="", event_type="x", outcome="success"),
        AuditEvent(actor="system", event_type="bad type with spaces", outcome="success"),
        AuditEvent(actor="system", event_type="x", outcome="maybe"),
        AuditEvent(actor="system\n", event_type="x", outcome="success"),
        AuditEvent(actor="system", event_type="x", outcome="success", procedure_id="p" * 200),
    ],
)
def test_event_fields_are_checked(event: AuditEvent) -> None:
    with pytest.raises(DetailRejected):
        event.validated_detail()
