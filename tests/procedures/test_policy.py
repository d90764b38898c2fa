"""The policy table: every row is checked against an independent statement of the rules (a table written here by
hand), plus the semantics of proofs, the renewal window and document validation."""

from __future__ import annotations

import copy
import json
from datetime import date
from importlib import resources

import pytest

from jpki_remote.procedures.plans import build_plan
from jpki_remote.procedures.policy import (
    TARGETS,
    Channel,
    PolicyError,
    ProcedureKind,
    add_months,
    default_policy,
    parse_policy,
)

A, S, K, OLD = "card_auth_key", "card_sign_key", "card_key", "card_old_pin"
F, FE, C, STAFF = "face_liveness", "face_enrolled", "security_code", "staff_check"
NO = None  # not allowed on this channel

# (procedure, target) -> {channel: proof groups or NO}
EXPECTED: dict[tuple[str, str], dict[str, list[list[str]] | None]] = {
    ("renewal", "certificates"): {"kiosk": [[A], [F], [C]], "online": [[A], [F], [C]], "counter": [[STAFF], [A]]},
    ("pin_reset", "sign_password"): {"kiosk": [[A], [F], [C]], "online": [[A], [F], [C]], "counter": [[STAFF], [K]]},
    ("pin_reset", "auth_pin"): {"kiosk": [[S], [F], [C]], "online": [[S], [F], [C]], "counter": [[STAFF], [K]]},
    ("pin_reset", "residence_pin"): {
        "kiosk": [[A, S], [F], [C]],
        "online": [[A, S], [F], [C]],
        "counter": [[STAFF], [K]],
    },
    ("pin_reset", "text_pin"): {"kiosk": [[A, S], [F], [C]], "online": [[A, S], [F], [C]], "counter": [[STAFF], [K]]},
    **{
        ("pin_change", t): {"kiosk": [[OLD]], "online": [[OLD]], "counter": [[OLD], [STAFF]]}
        for t in ("sign_password", "auth_pin", "residence_pin", "text_pin")
    },
    ("revocation", "signature"): {"kiosk": [[A], [C]], "online": [[A], [C]], "counter": [[STAFF]]},
    ("revocation", "all"): {"kiosk": [[A], [C]], "online": [[A], [C]], "counter": [[STAFF]]},
    ("loss_report", "card"): {"kiosk": NO, "online": [[FE], [C]], "counter": [[STAFF]]},
    ("issuance", "card"): {"kiosk": NO, "online": NO, "counter": [[STAFF]]},
    ("registry_event", "certificates"): {"kiosk": NO, "online": NO, "counter": [[STAFF]]},
}
ROWS = [(p, t, ch) for (p, t), chans in EXPECTED.items() for ch in chans]
PIN_PROOFS = {A, S, OLD}


def test_the_table_has_exactly_the_expected_rows() -> None:
    policy = default_policy()
    assert {(r.procedure.value, r.target, r.channel.value) for r in policy.rules.values()} == set(ROWS)
    assert len(policy.rules) == len(ROWS) == sum(len(t) for t in TARGETS.values()) * len(Channel)


@pytest.mark.parametrize(("procedure", "target", "channel"), ROWS)
def test_row(procedure: str, target: str, channel: str) -> None:
    rule = default_policy().rule(procedure, target, channel)
    expected = EXPECTED[(procedure, target)][channel]
    if expected is None:
        assert not rule.allowed and not rule.satisfied([A, S, K, F, FE, C, STAFF, OLD])
        return
    assert rule.allowed
    assert [sorted(p.value for p in g) for g in rule.proofs] == [sorted(g) for g in expected]
    # one alternative of every group satisfies the rule …
    for choice in range(max(len(g) for g in expected)):
        assert rule.satisfied([g[min(choice, len(g) - 1)] for g in expected])
    # … and leaving out any one group does not
    for skip in range(len(expected)):
        done = [g[0] for i, g in enumerate(expected) if i != skip]
        assert not rule.satisfied(done)
        assert rule.missing(done) == [rule.proofs[skip]]
    # a proof the rule does not name is never accepted in its place
    for proof in {A, S, K, F, FE, C, STAFF, OLD} - {p for g in expected for p in g}:
        assert not rule.accepts(proof)
    assert rule.note_ja and rule.note_en
    if procedure != "issuance":
        plan = build_plan(rule, next((p for g in expected for p in g if p in (A, S, K)), None))
        assert plan[-1] == "finish" and "proofs" in plan


@pytest.mark.parametrize("channel", ["kiosk", "online"])
def test_every_remote_reset_needs_a_pin_the_holder_still_knows(channel: str) -> None:
    """When every PIN is forgotten, no remote row can be satisfied: the counter is the only way."""
    policy = default_policy()
    for target in TARGETS[ProcedureKind.PIN_RESET]:
        rule = policy.rule("pin_reset", target, channel)
        assert not rule.satisfied([K, F, FE, C, STAFF])
        assert all(p.value in PIN_PROOFS for p in rule.proofs[0])
        assert target != "sign_password" or not rule.accepts(S)  # never the PIN being reset
        assert target != "auth_pin" or not rule.accepts(A)
    assert policy.rule("pin_reset", "auth_pin", "counter").satisfied([STAFF, K])
    assert policy.all_pins_forgotten["channel"] == "counter"


@pytest.mark.parametrize(
    ("not_after", "card_expiry", "today", "open_"),
    [
        (date(2027, 5, 31), date(2030, 1, 1), date(2027, 2, 27), False),
        (date(2027, 5, 31), date(2030, 1, 1), date(2027, 2, 28), True),  # 31 May - 3 months = 28 Feb
        (date(2027, 5, 31), date(2030, 1, 1), date(2027, 5, 31), True),
        (date(2027, 5, 31), date(2030, 1, 1), date(2028, 6, 1), True),  # after expiry, card still valid
        (date(2027, 5, 31), date(2028, 1, 1), date(2028, 1, 2), False),  # card itself expired
    ],
)
def test_renewal_window(not_after: date, card_expiry: date, today: date, open_: bool) -> None:
    assert default_policy().renewal_open(not_after, card_expiry, today) is open_


def test_add_months_clamps() -> None:
    assert add_months(date(2024, 5, 31), -3) == date(2024, 2, 29)
    assert add_months(date(2024, 1, 15), -3) == date(2023, 10, 15)
    assert add_months(date(2024, 11, 30), 3) == date(2025, 2, 28)


def _document() -> dict:
    return json.loads(resources.files("jpki_remote.procedures").joinpath("policy.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["rules"].pop(),
        lambda d: d["rules"].append(copy.deepcopy(d["rules"][0])),
        lambda d: d["rules"][0].update(proofs=[[]]),
        lambda d: d["rules"][0].update(proofs=[]),
        lambda d: d["rules"][0].update(proofs=[["telepathy"]]),
        lambda d: d["rules"][0].update(target="everything"),
        lambda d: d["rules"][0].update(channel="fax"),
        lambda d: d.pop("renewal_window"),
    ],
)
def test_inconsistent_documents_are_refused(break_it) -> None:
    document = _document()
    break_it(document)
    with pytest.raises(PolicyError):
        parse_policy(document)


def test_unknown_lookup() -> None:
    with pytest.raises(PolicyError):
        default_policy().rule("renewal", "certificates", "fax")
    assert default_policy().rule("renewal", "certificates", Channel.KIOSK).allowed
