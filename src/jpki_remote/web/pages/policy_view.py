"""The policy table as the admin page shows it: one row per procedure and target, one column per channel.

Built from :func:`jpki_remote.procedures.policy.default_policy` — the very object the engine enforces — so the
page cannot drift from the rules. Labels are bilingual (Japanese first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jpki_remote.procedures.policy import Channel, Policy, ProcedureKind, default_policy

PROCEDURE_LABELS: dict[str, tuple[str, str]] = {
    "renewal": ("電子証明書の更新", "Certificate renewal"),
    "pin_reset": ("暗証番号の初期化・再設定", "PIN reset"),
    "pin_change": ("暗証番号の変更", "PIN change"),
    "revocation": ("電子証明書の失効", "Revocation"),
    "loss_report": ("紛失の届出", "Loss report"),
    "issuance": ("新規交付", "New issuance"),
    "registry_event": ("住民基本台帳の異動", "Registry event"),
}
TARGET_LABELS: dict[str, tuple[str, str]] = {
    "certificates": ("電子証明書", "certificates"),
    "sign_password": ("署名用電子証明書のパスワード", "sign password"),
    "auth_pin": ("利用者証明用暗証番号", "auth PIN"),
    "residence_pin": ("住民基本台帳用暗証番号", "residence PIN"),
    "text_pin": ("券面事項入力補助用暗証番号", "text PIN"),
    "signature": ("署名用電子証明書", "signature certificate"),
    "all": ("両方の電子証明書", "both certificates"),
    "card": ("カード", "card"),
}
CHANNEL_LABELS: dict[str, tuple[str, str]] = {
    "kiosk": ("コンビニ キオスク端末", "Kiosk"),
    "online": ("オンライン（アプリ）", "Online"),
    "counter": ("市区町村の窓口", "Counter"),
}


@dataclass(frozen=True)
class Cell:
    allowed: bool
    groups: list[list[dict[str, str]]]  # conjunction of alternatives: [[{"code", "ja", "en"}, ...], ...]
    note_ja: str
    note_en: str


@dataclass(frozen=True)
class Row:
    procedure: str
    target: str
    procedure_ja: str
    procedure_en: str
    target_ja: str
    target_en: str
    cells: dict[str, Cell]


@dataclass(frozen=True)
class PolicyTable:
    version: int
    channels: list[dict[str, str]]
    rows: list[Row]
    proofs: list[dict[str, str]]
    months_before_expiry: int
    after_expiry_while_card_valid: bool
    signature_min_age: int
    all_pins_forgotten: dict[str, str]


def policy_table(policy: Policy | None = None) -> PolicyTable:
    policy = policy or default_policy()
    proof_text = {p.value: text for p, text in policy.proofs.items()}

    def proof(code: str) -> dict[str, str]:
        text = proof_text.get(code, {"ja": code, "en": code})
        return {"code": code, "ja": text["ja"], "en": text["en"]}

    rows: dict[tuple[str, str], dict[str, Cell]] = {}
    for (kind, target, channel), rule in policy.rules.items():
        cell = Cell(
            allowed=rule.allowed,
            groups=[[proof(p.value) for p in group] for group in rule.proofs],
            note_ja=rule.note_ja,
            note_en=rule.note_en,
        )
        rows.setdefault((kind.value, target), {})[channel.value] = cell
    out = []
    for (kind, target), cells in rows.items():
        pj, pe = PROCEDURE_LABELS.get(kind, (kind, kind))
        tj, te = TARGET_LABELS.get(target, (target, target))
        out.append(Row(kind, target, pj, pe, tj, te, cells))
    return PolicyTable(
        version=policy.version,
        channels=[
            {"code": c.value, "ja": CHANNEL_LABELS[c.value][0], "en": CHANNEL_LABELS[c.value][1]} for c in Channel
        ],
        rows=out,
        proofs=[proof(code) for code in proof_text],
        months_before_expiry=policy.months_before_expiry,
        after_expiry_while_card_valid=policy.after_expiry_while_card_valid,
        signature_min_age=policy.signature_min_age,
        all_pins_forgotten=dict(policy.all_pins_forgotten),
    )


def as_json(table: PolicyTable) -> dict[str, Any]:
    """Plain data (for tests and for scripts that want the same view)."""
    return {
        "version": table.version,
        "rows": [
            {
                "procedure": r.procedure,
                "target": r.target,
                "cells": {
                    ch: {"allowed": c.allowed, "proofs": [[p["code"] for p in g] for g in c.groups]}
                    for ch, c in r.cells.items()
                },
            }
            for r in table.rows
        ],
    }


KNOWN_PIN_OF_PROOF = {"card_auth_key": "auth_pin", "card_sign_key": "sign_password"}


CARD_PROOFS = frozenset({"card_auth_key", "card_sign_key", "card_key", "card_old_pin"})


def loss_report_without_card(channel: str, policy: Policy | None = None) -> bool:
    """Whether a holder on ``channel`` may report the card lost without it: the policy allows the loss report there
    and none of its proofs is the card's (the page then offers it and never waits for a card)."""
    policy = policy or default_policy()
    rule = policy.rules.get((ProcedureKind.LOSS_REPORT, "card", Channel(channel)))
    if rule is None or not rule.allowed:
        return False
    return not any(p.value in CARD_PROOFS for group in rule.proofs for p in group)


def holder_options(channel: str, policy: Policy | None = None) -> dict[str, Any]:
    """What the holder's screens need from the policy on ``channel``: for each PIN reset, which PINs the holder may
    prove the card with (in the policy's order), what to say when every PIN is forgotten, and whether the loss
    report (no card) is offered."""
    policy = policy or default_policy()
    known: dict[str, list[str]] = {}
    for (kind, target, rule_channel), rule in policy.rules.items():
        if kind.value != "pin_reset" or rule_channel.value != channel or not rule.allowed:
            continue
        for group in rule.proofs:
            pins = [KNOWN_PIN_OF_PROOF[p.value] for p in group if p.value in KNOWN_PIN_OF_PROOF]
            if pins:
                known[target] = pins
                break
    return {
        "reset_known": known,
        "all_pins_forgotten": dict(policy.all_pins_forgotten),
        "loss_report": loss_report_without_card(channel, policy),
    }
