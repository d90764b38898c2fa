"""The audit detail allow-list (security finding S-13): per event type, the keys and the kinds of their values.

Also reads the source: every audit call site of the procedure engine must use events and keys that are listed, so a
new event or key fails here (and, in strict mode, at run time) instead of being recorded as "refused"."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import Any

import pytest

from jpki_remote.audit import AuditEvent
from jpki_remote.audit import allowlist as al
from jpki_remote.audit.detail import AllowListViolation, AuditSchemaError, DetailRejected, validate_detail

SRC = Path(__file__).resolve().parents[2] / "src" / "jpki_remote"

# one realistic detail per listed event, shaped like its call site
EXAMPLES: dict[str, dict[str, Any]] = {
    "start": {"card_proof": "card_auth_key"},
    "limits": {"attempt_kind": "face_attempt", "reason": "rate_limited"},
    "code_sent": {"contact_kind": "email"},
    "code_verify": {"result": "accepted", "tries_left": 4},
    "face_match": {"result": "liveness_failed", "score": 0.312, "attempt_count": 2,
                   "liveness_reasons": ["no_movement", "step_missing"]},
    "staff_check": {"staff_id": "staff-20417", "document_types": ["passport", "residence_card"]},
    "pin_verify": {"pin_kind": "auth_pin", "tries_left": 2},
    "card_proof": {"proof_kind": "card_auth_key"},
    "card_face": {"reason": "surface_signature_invalid"},
    "card_surface": {"reason": "mismatch", "fields": "birth_date,sex", "key_label": "card-surface"},
    "keys_generated": {},
    "certificates_written": {},
    "committed": {"new_auth_serial": "0x3f2a9c0e11d4b7a85e6f0c1d2b3a4958"},
    "new_keys_proven": {},
    "pin_set": {"pin_kind": "sign_password"},
    "pin_changed": {"pin_kind": "text_pin", "reason": "new_pin_refused"},
    "issued": {"reason": "KeyStoreError", "auth_serial": "0x1a2b"},
    "revoked": {"reason": "superseded", "authentication_serial": "0x01", "signature_serial": "0x02"},
    "completed": {"notice_count": 2},
    "ended": {"reason": "expired"},
}


def _event(event_type: str, detail: dict[str, Any]) -> AuditEvent:
    return AuditEvent("system", event_type, "info", "kiosk-1", "p-1", detail)


def test_every_listed_event_has_an_example() -> None:
    assert set(EXAMPLES) == set(al.PROCEDURE_EVENTS)


@pytest.mark.parametrize("name", sorted(al.PROCEDURE_EVENTS))
def test_listed_events_accept_what_their_call_sites_send(name: str) -> None:
    for kind in al.PROCEDURE_KINDS:
        detail = {"channel": "kiosk", "target": "certificates", **EXAMPLES[name]}
        assert _event(f"{kind}.{name}", detail).validated_detail().startswith("{")
    assert _event("renewal.ended", {"detail": "refused", "delayed_seconds": 310}).validated_detail()


def test_lockout_lift_detail() -> None:
    detail = {"scope": "card", "subject": "s-0d8e85869bd36d54", "reason": "face_attempt",
              "locked_until": "2026-01-05T10:00:00+00:00", "note": "本人確認のうえ解除 (2026-01-04 窓口)"}
    assert _event("limits.lockout_lifted", detail).validated_detail()
    with pytest.raises(DetailRejected):
        _event("limits.lockout_lifted", {**detail, "note": "暗証番号は 4321 に"}).validated_detail()


@pytest.mark.parametrize(
    ("event_type", "detail"),
    [
        ("pin_reset.pin_set", {"pin_kind": "auth_pin", "value": "abc"}),  # a key the event does not list
        ("pin_reset.pin_verify", {"tries_left": 1234}),  # a PIN as a count
        ("pin_reset.pin_verify", {"tries_left": "2"}),  # a count as a string
        ("pin_reset.pin_verify", {"tries_left": True}),
        ("renewal.face_match", {"score": 1e9}),
        ("renewal.face_match", {"liveness_reasons": ["no_movement", "482913"]}),  # a code among the reasons
        ("renewal.face_match", {"liveness_reasons": "no_movement"}),  # not a list of codes
        ("renewal.ended", {"reason": "ABC123"}),  # a sign password as a reason
        ("renewal.ended", {"reason": "expired 0042"}),
        ("renewal.committed", {"new_auth_serial": "482913"}),  # a code as a serial
        ("renewal.staff_check", {"document_types": ["passport", "1234"]}),
        ("renewal.card_surface", {"fields": "birth_date,1234"}),
        ("renewal.ended", {"detail": "something else"}),
    ],
)
def test_listed_events_refuse_other_keys_and_values(event_type: str, detail: dict, monkeypatch) -> None:
    monkeypatch.setenv("JPKI_AUDIT_STRICT", "0")
    with pytest.raises(AllowListViolation):
        validate_detail(detail, event_type)
    with pytest.raises(DetailRejected):  # production: refused (the engine's port records {"detail": "refused"})
        _event(event_type, detail).validated_detail()


def test_strict_mode_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JPKI_AUDIT_STRICT", raising=False)  # under pytest: strict by default
    with pytest.raises(AuditSchemaError, match="allow-list"):
        _event("renewal.completed", {"notice_count": 1, "new_key": 3}).validated_detail()
    monkeypatch.setenv("JPKI_AUDIT_STRICT", "1")
    with pytest.raises(AuditSchemaError):
        _event("renewal.completed", {"mystery": 1}).validated_detail()
    # a deny-check hit stays a DetailRejected in every mode (callers treat it as "refused")
    with pytest.raises(DetailRejected):
        _event("test.event", {"new_pin": "x"}).validated_detail()


def test_production_port_records_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from jpki_remote.audit.log import AuditLog
    from jpki_remote.procedures.ports import AuditLogPort
    from jpki_remote.store import Database

    monkeypatch.setenv("JPKI_AUDIT_STRICT", "0")
    db = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    db.create_schema()
    log = AuditLog(db)
    AuditLogPort(log).record(actor="system", event_type="renewal.completed", outcome="success", terminal_id=None,
                             procedure_id="p-1", detail={"notice_count": 1, "entered_value": "ABC123"})
    [event] = log.events()
    assert event.detail == {"detail": "refused"}
    db.dispose()


@pytest.mark.parametrize(
    "detail",
    [
        {"pin1": 1234},
        {"暗証番号": "ABC123"},
        {"value": "ABC123"},
        {"entered": "code 482913"},
        {"blob": "ffd8ffe000104a46494600010100000100010000ffdb"},
        {"pin_hash": hashlib.sha256(b"1234").hexdigest()},
        {"checksum": hashlib.sha256(b"482913").hexdigest()},  # any bare hash
        {"key_fingerprint": hashlib.sha1(b"1234").hexdigest()},  # noqa: S324 - a PIN's hash as a "fingerprint"
        {"blob": "ab" * 100},  # binary as hex
        {"note": "new password is XY12Z9 ok"},
        {"codeDigest": "x"},
    ],
)
def test_deny_line_catches_disguises_on_unlisted_events(detail: dict) -> None:
    with pytest.raises(DetailRejected):
        validate_detail(detail)
    with pytest.raises(DetailRejected):
        _event("test.event", detail).validated_detail()


def test_deny_line_keeps_ordinary_values() -> None:
    fingerprint = hashlib.sha256(b"a public key").hexdigest()
    assert validate_detail({"key_fingerprint": fingerprint, "key_label": "sig-ca-2026", "at": "2026-12-04T10:00:00Z",
                            "note": "moved on 2026-12-04 at 10:30", "serial": "0x3f2a9c0e11d4b7a85e6f0c1d2b3a4958"})


def test_procedure_kinds_are_the_engine_s() -> None:
    from jpki_remote.procedures.policy import ProcedureKind

    assert set(al.PROCEDURE_KINDS) == {k.value for k in ProcedureKind}


# ---- the call sites -----------------------------------------------------------------------------------------------
def _dict_keys(node: ast.AST, assigned: dict[str, ast.AST]) -> list[str] | None:
    """Keys of a dict literal (or of a name assigned one in the same function); None if not knowable."""
    if isinstance(node, ast.Name) and node.id in assigned:
        node = assigned[node.id]
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
        return [k.value for k in node.keys]  # type: ignore[union-attr]
    if isinstance(node, ast.DictComp) and isinstance(node.key, ast.JoinedStr):
        tail = node.key.values[-1]
        if isinstance(tail, ast.Constant):
            return ["*" + tail.value]  # e.g. f"{k}_serial": some listed key must end so
    return None


def _call_sites() -> list[tuple[str, str, list[str]]]:
    """(where, event name, detail keys) of every ``_audit(proc, "<event>", …)`` and ``_queue_audit({...})``."""
    found = []
    for path in sorted((SRC / "procedures").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            assigned = {t.id: n.value for n in ast.walk(func) if isinstance(n, ast.Assign)
                        for t in n.targets if isinstance(t, ast.Name)}
            for call in [n for n in ast.walk(func) if isinstance(n, ast.Call)]:
                name = getattr(call.func, "attr", None)
                where = f"{path.name}:{call.lineno}"
                if name == "_audit" and len(call.args) >= 2:
                    event = call.args[1]
                    assert isinstance(event, ast.Constant), f"{where}: event name must be a literal"
                    keys: list[str] = []
                    for kw in call.keywords:
                        if kw.arg is not None:
                            keys.append(kw.arg)
                        else:
                            expanded = _dict_keys(kw.value, assigned)
                            assert expanded is not None, f"{where}: cannot see the keys of **{ast.unparse(kw.value)}"
                            keys += expanded
                    found.append((where, event.value, keys))
                elif name == "_queue_audit" and call.args and isinstance(call.args[0], ast.Dict):
                    record = {k.value: v for k, v in zip(call.args[0].keys, call.args[0].values, strict=True)
                              if isinstance(k, ast.Constant)}
                    event_type = record.get("event_type")
                    if isinstance(event_type, ast.JoinedStr) and isinstance(event_type.values[-1], ast.Constant):
                        event = event_type.values[-1].value.lstrip(".")
                        keys = _dict_keys(record["detail"], assigned) if "detail" in record else []
                        if keys is not None and event:  # the generic _audit body itself has no literal event
                            found.append((where, event, [k for k in keys if k not in al.PROCEDURE_COMMON]))
    return found


def test_every_engine_audit_call_site_is_on_the_allow_list() -> None:
    sites = _call_sites()
    assert len(sites) >= 30, sites  # the scan sees the engine's events
    problems = []
    for where, event, keys in sites:
        listed = al.PROCEDURE_EVENTS.get(event)
        if listed is None:
            problems.append(f"{where}: event {event!r} is not in audit/allowlist.py PROCEDURE_EVENTS")
            continue
        allowed = {**al.ANY_EVENT, **al.PROCEDURE_COMMON, **listed}
        for key in keys:
            if key.startswith("*"):
                if not any(k.endswith(key[1:]) for k in allowed):
                    problems.append(f"{where}: {event}: no listed key ends with {key[1:]!r}")
            elif key not in allowed:
                problems.append(f"{where}: {event}: key {key!r} is not on the allow-list")
    assert not problems, "\n".join(problems)


def test_limits_lockout_event_type_is_listed() -> None:
    source = (SRC / "proofing" / "limits.py").read_text(encoding="utf-8")
    assert 'event_type="limits.lockout_lifted"' in source
    tree = ast.parse(source)
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "scope" for k in node.keys):
            keys |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "update" and node.keywords:
            keys |= {kw.arg for kw in node.keywords if kw.arg}
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and \
                getattr(node.value, "id", None) == "detail":
            keys.add(node.slice.value)
    assert keys and keys <= set(al.OTHER_EVENTS["limits.lockout_lifted"]), keys
