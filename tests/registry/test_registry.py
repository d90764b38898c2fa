"""Registry storage and rules, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.exc import IntegrityError

from jpki_remote.registry import service
from jpki_remote.registry.models import CardState, Contact, RegistryEventKind, Resident, ResidentStatus
from jpki_remote.registry.service import RegistryError
from jpki_remote.store import Database


def _setup(db: Database) -> tuple[str, str]:
    with db.session() as s:
        service.create_municipality(s, "13103", "港区", "東京都")
        resident = service.add_resident(
            s,
            "131032",
            family_name="山田",
            given_name="花子",
            address="東京都港区芝公園1-5-25",
            birth_date=date(1990, 4, 1),
            sex=2,
        )
        service.register_card(
            s,
            card_id="123456789012345",
            resident_id=resident.id,
            card_expiry=date(2030, 4, 1),
            diversification_data=bytes(10),
        )
        return resident.id, "123456789012345"


def test_municipality_check_digit() -> None:
    # Published codes: 港区 131032, 豊田市 232114, 宮崎市 452017
    assert service.normalise_municipality_code("13103") == "131032"
    assert service.normalise_municipality_code("23211") == "232114"
    assert service.normalise_municipality_code("452017") == "452017"
    with pytest.raises(RegistryError) as err:
        service.normalise_municipality_code("131033")
    assert err.value.code == "municipality_code_invalid"
    with pytest.raises(RegistryError):
        service.normalise_municipality_code("13x03")


def test_resident_card_contacts_round_trip(database: Database) -> None:
    resident_id, card_id = _setup(database)
    with database.session() as s:
        service.add_contact(s, resident_id, "email", "Hanako@Example.JP", verified=True)
        service.add_contact(s, resident_id, "mobile", "090-1234-5678")
        again = service.add_contact(s, resident_id, "email", "Hanako@example.jp")
        assert again.verified  # same normalised address: one row, verified flag kept
    with database.session() as s:
        resident = s.get(Resident, resident_id)
        assert resident is not None and resident.full_name == "山田\u3000花子"
        assert resident.status is ResidentStatus.ACTIVE
        contacts = service.contacts_of(s, resident_id)
        assert [c.address for c in contacts] == ["Hanako@example.jp", "+819012345678"]
        assert [c.address for c in service.contacts_of(s, resident_id, verified_only=True)] == ["Hanako@example.jp"]
        card = service.get_card(s, card_id)
        assert card is not None and card.state is CardState.ACTIVE and card.municipality_code == "131032"
        assert service.get_card(s, "nonexistent") is None
        assert service.get_card(s, "'; drop table x") is None


def test_bad_input_is_refused_with_codes(database: Database) -> None:
    resident_id, _ = _setup(database)
    cases = [
        (lambda s: service.add_contact(s, resident_id, "email", "not-an-address"), "contact_invalid"),
        (lambda s: service.add_contact(s, resident_id, "fax", "0312345678"), "contact_invalid"),
        (lambda s: service.add_contact(s, resident_id, "mobile", "0312345678"), "contact_invalid"),
        (
            lambda s: service.add_resident(
                s, "131032", family_name="", given_name="x", address="y", birth_date=date(1990, 1, 1), sex=1
            ),
            "resident_invalid",
        ),
        (
            lambda s: service.add_resident(
                s, "131032", family_name="a", given_name="b", address="c", birth_date=date(2990, 1, 1), sex=1
            ),
            "resident_invalid",
        ),
        (
            lambda s: service.add_resident(
                s, "131032", family_name="a", given_name="b", address="c", birth_date=date(1990, 1, 1), sex=5
            ),
            "resident_invalid",
        ),
        (
            lambda s: service.add_resident(
                s, "01100", family_name="a", given_name="b", address="c", birth_date=date(1990, 1, 1), sex=1
            ),
            "municipality_unknown",
        ),
        (
            lambda s: service.register_card(
                s, card_id="bad id", resident_id=resident_id, card_expiry=date(2030, 1, 1), diversification_data=b"x"
            ),
            "card_id_invalid",
        ),
        (lambda s: service.record_event(s, resident_id, "married"), "event_invalid"),
        (lambda s: service.record_event(s, resident_id, "name_changed", {"address": "x"}), "event_invalid"),
        (lambda s: service.enrol_face(s, "NOSUCHCARD01", [0.1] * 128, "dlib"), "card_unknown"),
    ]
    for call, code in cases:
        with pytest.raises(RegistryError) as err, database.session() as s:
            call(s)
        assert err.value.code == code


def test_one_valid_card_per_resident(database: Database) -> None:
    resident_id, card_id = _setup(database)
    with pytest.raises(RegistryError) as err, database.session() as s:
        service.register_card(
            s,
            card_id="999999999999999",
            resident_id=resident_id,
            card_expiry=date(2031, 1, 1),
            diversification_data=bytes(10),
        )
    assert err.value.code == "resident_has_card"
    with database.session() as s:
        service.set_card_state(s, card_id, CardState.LOST, "reported lost")
        service.register_card(
            s,
            card_id="999999999999999",
            resident_id=resident_id,
            card_expiry=date(2031, 1, 1),
            diversification_data=bytes(10),
        )
    with pytest.raises(RegistryError) as err, database.session() as s:
        service.set_card_state(s, card_id, CardState.ACTIVE, "found again")
    assert err.value.code == "card_final"


def test_contact_uniqueness_is_a_database_constraint(database: Database) -> None:
    resident_id, _ = _setup(database)
    with pytest.raises(IntegrityError), database.session() as s:
        for _ in range(2):
            s.add(
                Contact(
                    resident_id=resident_id, kind="email", address="a@b.jp", verified=False, created_at=service.now()
                )
            )
            s.flush()


def test_events_change_facts_and_status(database: Database) -> None:
    resident_id, _ = _setup(database)
    with database.session() as s:
        event = service.record_event(
            s, resident_id, RegistryEventKind.ADDRESS_CHANGED, {"address": "東京都港区六本木6-10-1"}
        )
        assert event.changes == {"address": "東京都港区六本木6-10-1"}
        service.record_event(s, resident_id, "name_changed", {"family_name": "佐藤"})
    with database.session() as s:
        resident = service.get_resident(s, resident_id)
        assert resident.address == "東京都港区六本木6-10-1" and resident.family_name == "佐藤"
        assert resident.facts_version == 3
        service.record_event(s, resident_id, "deceased")
    with database.session() as s:
        assert service.get_resident(s, resident_id).status is ResidentStatus.DECEASED
    with pytest.raises(RegistryError) as err, database.session() as s:
        service.record_event(s, resident_id, "address_changed", {"address": "x"})
    assert err.value.code == "resident_not_active"


def test_enrolled_face_keeps_only_the_encoding(database: Database) -> None:
    _, card_id = _setup(database)
    vector = [i / 1000 for i in range(128)]
    with database.session() as s:
        service.enrol_face(s, card_id, vector, "dlib-resnet-v1")
    with database.session() as s:
        model, back = service.enrolled_encoding(s, card_id)  # type: ignore[misc]
        assert model == "dlib-resnet-v1" and back == vector
        with pytest.raises(RegistryError):
            service.enrol_face(s, card_id, [float("nan")] * 128, "x")
        assert service.delete_enrolled_face(s, card_id)
        assert service.enrolled_encoding(s, card_id) is None


def test_age_on() -> None:
    assert service.age_on(date(2010, 5, 3), date(2025, 5, 2)) == 14
    assert service.age_on(date(2010, 5, 3), date(2025, 5, 3)) == 15
