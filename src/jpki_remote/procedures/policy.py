"""The policy table: which proofs each procedure needs on each channel, as data (``policy.json``).

A rule's ``proofs`` is a conjunction of groups; each group lists alternatives, any one of which satisfies it. So
``[["card_auth_key", "card_sign_key"], ["face_liveness"]]`` reads "a card signature after either JPKI PIN, and a face
match". The engine asks :meth:`Rule.missing` which groups are still open; nothing else in the code decides which
proofs a procedure needs. The same document holds the renewal window, the minimum age for a signature certificate
and what the holder is told when every PIN is forgotten (counter only: every remote reset needs a card signature,
which needs a PIN the holder still knows).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jpki_remote import validity


class Channel(enum.StrEnum):
    KIOSK = "kiosk"
    ONLINE = "online"
    COUNTER = "counter"


class ProcedureKind(enum.StrEnum):
    RENEWAL = "renewal"
    PIN_RESET = "pin_reset"
    PIN_CHANGE = "pin_change"
    REVOCATION = "revocation"
    LOSS_REPORT = "loss_report"
    ISSUANCE = "issuance"
    REGISTRY_EVENT = "registry_event"


class Proof(enum.StrEnum):
    CARD_AUTH_KEY = "card_auth_key"
    CARD_SIGN_KEY = "card_sign_key"
    CARD_KEY = "card_key"
    CARD_OLD_PIN = "card_old_pin"
    FACE_LIVENESS = "face_liveness"
    FACE_ENROLLED = "face_enrolled"
    SECURITY_CODE = "security_code"
    STAFF_CHECK = "staff_check"


PIN_TARGETS = ("sign_password", "auth_pin", "residence_pin", "text_pin")
TARGETS: dict[ProcedureKind, tuple[str, ...]] = {
    ProcedureKind.RENEWAL: ("certificates",),
    ProcedureKind.PIN_RESET: PIN_TARGETS,
    ProcedureKind.PIN_CHANGE: PIN_TARGETS,
    ProcedureKind.REVOCATION: ("signature", "all"),
    ProcedureKind.LOSS_REPORT: ("card",),
    ProcedureKind.ISSUANCE: ("card",),
    ProcedureKind.REGISTRY_EVENT: ("certificates",),
}


class PolicyError(ValueError):
    """The policy document is inconsistent, or a procedure/target/channel is unknown."""


@dataclass(frozen=True)
class Rule:
    procedure: ProcedureKind
    target: str
    channel: Channel
    allowed: bool
    proofs: tuple[tuple[Proof, ...], ...]
    note_ja: str
    note_en: str

    def missing(self, done: Iterable[str]) -> list[tuple[Proof, ...]]:
        """The groups not yet satisfied by the proofs in ``done``."""
        have = set(done)
        return [group for group in self.proofs if not any(p.value in have for p in group)]

    def satisfied(self, done: Iterable[str]) -> bool:
        return self.allowed and not self.missing(done)

    def accepts(self, proof: str) -> bool:
        """Whether ``proof`` appears in this rule at all (a proof the rule does not ask for is refused)."""
        return any(p.value == proof for group in self.proofs for p in group)

    def as_dict(self) -> dict[str, Any]:
        return {
            "procedure": self.procedure.value,
            "target": self.target,
            "channel": self.channel.value,
            "allowed": self.allowed,
            "proofs": [[p.value for p in group] for group in self.proofs],
            "note_ja": self.note_ja,
            "note_en": self.note_en,
        }


def add_months(day: date, months: int) -> date:
    """``day`` shifted by ``months`` calendar months, clamped to the month's last day (31 May - 3 → 28/29 Feb).
    The rule is :func:`jpki_remote.validity.add_months`."""
    return validity.add_months(day, months)


@dataclass(frozen=True)
class Policy:
    version: int
    rules: dict[tuple[ProcedureKind, str, Channel], Rule]
    proofs: dict[Proof, dict[str, str]]
    months_before_expiry: int
    after_expiry_while_card_valid: bool
    signature_min_age: int
    all_pins_forgotten: dict[str, str]

    def rule(self, procedure: ProcedureKind | str, target: str, channel: Channel | str) -> Rule:
        try:
            key = (ProcedureKind(procedure), target, Channel(channel))
        except ValueError:
            raise PolicyError(f"unknown procedure or channel: {procedure!r} / {channel!r}") from None
        rule = self.rules.get(key)
        if rule is None:
            raise PolicyError(f"no policy rule for {key[0].value} / {target!r} / {key[2].value}")
        return rule

    def _validity(self) -> validity.ValidityPolicy:
        return validity.ValidityPolicy(
            renewal_window_months=self.months_before_expiry, signature_min_age=self.signature_min_age
        )

    def renewal_open(self, certificate_not_after: date, card_expiry: date, today: date) -> bool:
        """Renewal is open from N months before the certificate expires; after that only while the card is valid
        (and only when the policy allows renewal after the certificate's expiry). The window arithmetic is
        :func:`jpki_remote.validity.can_renew_certificate`."""
        if not validity.can_renew_certificate(today, certificate_not_after, card_expiry, self._validity()):
            return False
        return today <= certificate_not_after or self.after_expiry_while_card_valid

    def renewal_opens_on(self, certificate_not_after: date) -> date:
        return validity.renewal_window_opens(certificate_not_after, self._validity())

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "renewal_window": {
                "months_before_expiry": self.months_before_expiry,
                "after_certificate_expiry_while_card_valid": self.after_expiry_while_card_valid,
            },
            "signature_certificate_min_age": self.signature_min_age,
            "all_pins_forgotten": dict(self.all_pins_forgotten),
            "proofs": {p.value: dict(text) for p, text in self.proofs.items()},
            "rules": [rule.as_dict() for rule in self.rules.values()],
        }


def parse_policy(document: dict[str, Any]) -> Policy:
    """Validate and load a policy document: every procedure/target/channel has exactly one rule."""
    try:
        proofs = {Proof(name): {"ja": str(t["ja"]), "en": str(t["en"])} for name, t in document["proofs"].items()}
        rules: dict[tuple[ProcedureKind, str, Channel], Rule] = {}
        for raw in document["rules"]:
            procedure = ProcedureKind(raw["procedure"])
            target = str(raw["target"])
            if target not in TARGETS[procedure]:
                raise PolicyError(f"{procedure.value} has no target {target!r}")
            channel = Channel(raw["channel"])
            groups = tuple(tuple(Proof(p) for p in group) for group in raw["proofs"])
            if any(not group for group in groups):
                raise PolicyError(f"empty proof group in {procedure.value}/{target}/{channel.value}")
            allowed = bool(raw["allowed"])
            if allowed and not groups:
                raise PolicyError(f"{procedure.value}/{target}/{channel.value} is allowed with no proof at all")
            key = (procedure, target, channel)
            if key in rules:
                raise PolicyError(f"duplicate rule {procedure.value}/{target}/{channel.value}")
            rules[key] = Rule(
                procedure, target, channel, allowed, groups, raw.get("note_ja", ""), raw.get("note_en", "")
            )
        for procedure, targets in TARGETS.items():
            for target in targets:
                for channel in Channel:
                    if (procedure, target, channel) not in rules:
                        raise PolicyError(f"missing rule {procedure.value}/{target}/{channel.value}")
        window = document["renewal_window"]
        return Policy(
            version=int(document["version"]),
            rules=rules,
            proofs=proofs,
            months_before_expiry=int(window["months_before_expiry"]),
            after_expiry_while_card_valid=bool(window["after_certificate_expiry_while_card_valid"]),
            signature_min_age=int(document["signature_certificate_min_age"]),
            all_pins_forgotten={k: str(v) for k, v in document["all_pins_forgotten"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, PolicyError):
            raise
        raise PolicyError(f"invalid policy document: {exc!r}") from None


def load_policy(path: Path | None = None) -> Policy:
    """The policy from ``path``, or the one shipped with the package."""
    if path is None:
        return default_policy()
    return parse_policy(json.loads(Path(path).read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    text = resources.files("jpki_remote.procedures").joinpath("policy.json").read_text(encoding="utf-8")
    return parse_policy(json.loads(text))
