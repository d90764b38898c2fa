"""``GET /api/v1/admin/audit/{seq}/proof``: 0-based sequence numbers, the event's own bytes (``leaf_data``) and the
tree head with its signing public key — enough to verify everything outside the server, as the audit page does."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from web_world import Web

from jpki_remote.audit import merkle
from jpki_remote.audit.events import AuditEvent
from jpki_remote.audit.signing import key_id_of, tree_head_bytes

API = "/api/v1"


def _admin(web: Web) -> dict[str, str]:
    return {"Authorization": f"Bearer {web.admin_token}"}


def _log_some(web: Web, count: int, *, sign: bool = True) -> None:
    events = [
        AuditEvent(actor=f"holder:c{i:04d}", event_type="renewal.step", outcome="info", detail={"n": i})
        for i in range(count)
    ]
    web.world.audit.append_batch(events, sign=sign)


def _check(proof: dict) -> None:
    """Everything the browser checks, done here independently of the server's own verify()."""
    leaf = merkle.leaf_hash(bytes.fromhex(proof["leaf_data"]))
    assert leaf.hex() == proof["leaf_hash"]
    merkle.verify_inclusion(
        proof["seq"],
        proof["tree_size"],
        leaf,
        [bytes.fromhex(h) for h in proof["path"]],
        bytes.fromhex(proof["root_hash"]),
    )
    head = proof["signed_head"]
    assert head is not None and head["root_hash"] == proof["root_hash"] and head["tree_size"] == proof["tree_size"]
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(head["public_key"]))
    assert key_id_of(public) == head["key_id"]
    public.verify(
        bytes.fromhex(head["signature"]),
        tree_head_bytes(head["tree_size"], head["timestamp_ms"], bytes.fromhex(head["root_hash"])),
    )


def test_every_event_from_zero_is_provable(web: Web) -> None:
    _log_some(web, 5)
    _log_some(web, 6)
    size = web.world.audit.size()
    assert size == 11
    for seq in range(size):
        response = web.client.get(f"{API}/admin/audit/{seq}/proof", headers=_admin(web))
        assert response.status_code == 200, (seq, response.text)
        proof = response.json()
        assert proof["seq"] == seq
        _check(proof)
    first = web.client.get(f"{API}/admin/audit/0/proof", headers=_admin(web)).json()
    assert bytes.fromhex(first["leaf_data"]).decode().count('"actor":"holder:c0000"') == 1


def test_out_of_range_is_404_never_500(web: Web) -> None:
    _log_some(web, 3)
    for seq in (3, 4, 10**12):
        response = web.client.get(f"{API}/admin/audit/{seq}/proof", headers=_admin(web))
        assert response.status_code == 404, (seq, response.text)
        assert response.json()["error"]["code"] == "not_found"
    for seq in (-1, 10**30):  # no such event either way; a clear 4xx, never a 500
        assert web.client.get(f"{API}/admin/audit/{seq}/proof", headers=_admin(web)).status_code in (404, 422)
    assert web.client.get(f"{API}/admin/audit/x/proof", headers=_admin(web)).status_code == 422
    assert web.client.get(f"{API}/admin/audit/0/proof").status_code == 401


def test_empty_log_has_nothing_to_prove(web: Web) -> None:
    assert web.world.audit.size() == 0
    assert web.client.get(f"{API}/admin/audit/0/proof", headers=_admin(web)).status_code == 404
    listing = web.client.get(f"{API}/admin/audit", headers=_admin(web)).json()
    assert listing["size"] == 0 and listing["signed_head"] is None


def test_a_changed_record_no_longer_proves(web: Web) -> None:
    _log_some(web, 4)
    proof = web.client.get(f"{API}/admin/audit/2/proof", headers=_admin(web)).json()
    data = bytes.fromhex(proof["leaf_data"]).replace(b"holder:c0002", b"holder:c0003")
    forged = merkle.leaf_hash(data)
    path = [bytes.fromhex(h) for h in proof["path"]]
    try:
        merkle.verify_inclusion(2, proof["tree_size"], forged, path, bytes.fromhex(proof["root_hash"]))
    except merkle.ProofError:
        pass
    else:
        raise AssertionError("a changed record still proved")


def test_listing_carries_the_latest_signed_head_with_its_key(web: Web) -> None:
    _log_some(web, 2)
    _log_some(web, 3, sign=False)  # not yet covered by a head
    listing = web.client.get(f"{API}/admin/audit", headers=_admin(web)).json()
    head = listing["signed_head"]
    assert listing["size"] == 5 and head["tree_size"] == 2 and len(head["public_key"]) == 64
    uncovered = web.client.get(f"{API}/admin/audit/4/proof", headers=_admin(web)).json()
    assert uncovered["tree_size"] == 5 and uncovered["signed_head"] is None
    covered = web.client.get(f"{API}/admin/audit/1/proof", headers=_admin(web)).json()
    _check(covered)
