"""The admin page's in-browser proof check (merkle.js, SubtleCrypto) against proofs from the real audit log: every
proof of a real log verifies, with the leaf hashed from the event itself and the tree head's Ed25519 signature
checked; a changed event, path, index or root does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import RunningServer, sign_in_admin
from jpki_remote.audit.events import AuditEvent, leaf_data
from jpki_remote.audit.log import AuditLog
from jpki_remote.audit.signing import load_or_create_signer
from jpki_remote.store import Database

EVENTS = 37  # not a power of two: proofs of the right edge take the RFC 9162 short paths


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("audit")
    db = Database(f"sqlite:///{folder / 'audit.db'}")
    db.create_schema()
    signer = load_or_create_signer(folder / "signing-key.pem")
    log = AuditLog(db, signer)
    log.append_batch(
        [
            AuditEvent(actor=f"holder:c{i:04d}", event_type="renewal.face_match",
                       outcome="success" if i % 3 else "failure", terminal_id="tkiosk01",
                       procedure_id=f"p{i:04d}", detail={"attempt_count": i % 5 + 1})
            for i in range(EVENTS)
        ]
    )
    public = signer.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    yield log, public
    db.dispose()


def _proof_with_leaf(log: AuditLog, seq: int) -> dict[str, Any]:
    proof = log.inclusion_proof(seq).as_dict()
    event = log.event(seq)
    assert event is not None
    data = leaf_data(event.seq, event.occurred_at, event.actor, event.terminal_id, event.procedure_id,
                     event.event_type, event.outcome, event.detail_json)
    proof["leaf_data"] = data.hex()
    return proof


@pytest.fixture
def audit_page(pages_server: RunningServer, browser_factory: Any) -> Any:
    page = browser_factory().new_page()
    sign_in_admin(page, pages_server)
    page.goto(pages_server.url + "/admin/audit")
    page.wait_for_function("() => window.JPKI && window.JPKI.merkle")  # a function: the CSP refuses eval
    return page


VERIFY = "([proof, key]) => JPKI.merkle.verifyInclusion(proof, { publicKeyHex: key })"


def test_every_proof_of_a_real_log_verifies_in_the_browser(audit_log: Any, audit_page: Any) -> None:
    log, public = audit_log
    for seq in range(EVENTS):
        proof = _proof_with_leaf(log, seq)
        assert proof["signed_head"] is not None
        report = audit_page.evaluate(VERIFY, [proof, public])
        assert report["ok"] is True, (seq, report)
        assert report["leafOk"] is True and report["rootOk"] is True and report["headOk"] is True
        assert report["signatureOk"] is True


def _flip(hex_string: str, position: int = 0) -> str:
    raw = bytearray(bytes.fromhex(hex_string))
    raw[position] ^= 0x01
    return raw.hex()


@pytest.mark.parametrize("tamper", ["event", "path", "index", "root", "signature", "short_path"])
def test_a_tampered_proof_is_refused(audit_log: Any, audit_page: Any, tamper: str) -> None:
    log, public = audit_log
    proof = _proof_with_leaf(log, 21)
    if tamper == "event":
        tampered = proof["leaf_data"].replace(b"holder:c0021".hex(), b"holder:c0099".hex(), 1)
        assert tampered != proof["leaf_data"]
        proof["leaf_data"] = tampered
    elif tamper == "path":
        proof["path"][1] = _flip(proof["path"][1], 5)
    elif tamper == "index":
        proof["seq"] = 20
    elif tamper == "root":
        proof["root_hash"] = _flip(proof["root_hash"])
        proof["signed_head"]["root_hash"] = proof["root_hash"]
    elif tamper == "signature":
        proof["signed_head"]["signature"] = _flip(proof["signed_head"]["signature"], 10)
    elif tamper == "short_path":
        proof["path"] = proof["path"][:-1]
    report = audit_page.evaluate(VERIFY, [proof, public])
    assert report["ok"] is False, (tamper, report)


def test_the_browser_agrees_with_the_python_verifier_on_roots(audit_log: Any, audit_page: Any) -> None:
    """rootFromInclusion over the leaf hash alone gives the log's root for every tree size we ask about."""
    log, _ = audit_log
    for size in (1, 2, 3, 8, 17, EVENTS):
        for seq in {0, size // 2, size - 1}:
            proof = log.inclusion_proof(seq, tree_size=size)
            root = audit_page.evaluate(
                """async ([seq, size, leaf, path]) => JPKI.merkle.bytesToHex(await JPKI.merkle.rootFromInclusion(
                    seq, size, JPKI.merkle.hexToBytes(leaf), path.map(JPKI.merkle.hexToBytes)))""",
                [seq, size, proof.leaf_hash.hex(), [h.hex() for h in proof.path]],
            )
            assert root == log.root(size).hex() == proof.root_hash.hex()


def test_merkle_script_is_served_to_the_audit_page(pages_server: RunningServer, tmp_path: Path) -> None:
    import httpx

    response = httpx.get(pages_server.url + "/static/pages/js/merkle.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert httpx.get(pages_server.url + "/static/pages/../routes.py").status_code == 404
