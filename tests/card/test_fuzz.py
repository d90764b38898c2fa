"""Property/fuzz tests: random bytes and random well-formed APDUs at every applet. No exception escapes, every
answer ends in a status word, and the card state stays valid and loadable from disk."""

from __future__ import annotations

import copy
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jpki_remote.card import layout
from jpki_remote.card.apdu import CommandApdu
from jpki_remote.card.client import CardClient
from jpki_remote.card.store import CardStore

SELECTS = [bytes.fromhex("00A4040C") + bytes((len(a),)) + a for a in
           [*(app.aid for app in layout.APPLETS), layout.AID_ISSUER]]
KNOWN_INS = [0xA4, 0xB0, 0xB2, 0x20, 0x24, 0x2A, 0x32, 0x50, 0x82, 0xC0, 0xE2, 0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5,
             0xF6, 0xF7]

well_formed = st.builds(
    CommandApdu,
    cla=st.sampled_from([0x00, 0x80, 0x84, 0x0C, 0x01, 0xFF]),
    ins=st.sampled_from(KNOWN_INS) | st.integers(0, 255),
    p1=st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x80, 0x86, 0x8A, 0x97, 0x9A]) | st.integers(0, 255),
    p2=st.sampled_from([0x00, 0x0C, 0x04, 0x80, 0x97, 0x98, 0x9B]) | st.integers(0, 255),
    data=st.binary(max_size=300),
    ne=st.none() | st.integers(1, 65536),
)
commands = st.lists(
    st.one_of(st.sampled_from(SELECTS), st.binary(max_size=40), well_formed.map(lambda c: c.to_bytes())),
    min_size=1, max_size=25,
)


@pytest.fixture
def fuzz_store(made_card_template, tmp_path_factory):
    directory, template = made_card_template
    target = tmp_path_factory.mktemp("fuzz") / "cards"
    shutil.copytree(directory, target)
    return CardStore(target), template


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=commands)
def test_random_apdus_never_break_the_card(fuzz_store, pooled_keygen, script: list[bytes]) -> None:
    store, template = fuzz_store
    card = store.open(template.card_id, keygen=pooled_keygen)
    for apdu in script:
        resp = card.transmit(apdu)
        assert isinstance(resp, bytes) and len(resp) >= 2
        sw1 = resp[-2]
        assert sw1 in (0x90, 0x61, 0x62, 0x63, 0x65, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F)
        assert (resp[-2:], resp[:-2]) != (b"\x6f\x00", b"")  # no internal error
    # the state on disk is still loadable and the card still works for its holder
    reloaded = store.open(template.card_id)
    reloaded.state.public_summary()
    client = CardClient(reloaded)
    assert client.read_auth_certificate()[:2] == b"\x30\x82"


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=600))
def test_random_bytes_in_every_applet(made_card_template, raw: bytes) -> None:
    from jpki_remote.card.virtual import VirtualCard

    _, template = made_card_template
    card = VirtualCard(copy.deepcopy(template.card.state))  # in memory: nothing written
    for select in SELECTS:
        card.transmit(select)
        resp = card.transmit(raw)
        assert len(resp) >= 2 and resp[-2:] != b"\x6f\x00"
