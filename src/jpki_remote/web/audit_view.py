"""What the admin audit browser needs to check a proof by itself: the proof with the event's own bytes and the tree
head with the public key that signed it.

* ``leaf_data`` — the canonical JSON of the event (hex), exactly what the leaf hash is computed over, so the browser
  hashes the record itself instead of trusting the server's leaf hash;
* ``signed_head.public_key`` — the raw Ed25519 public key (hex) of the server's tree-head signing key, given only
  when the head's ``key_id`` is that key's id (a head signed by an earlier key gets no key here: an auditor checks it
  against the published keys). The key comes from the server, so a "verified" badge shows the log is consistent
  with what the server signed; comparing ``key_id`` with the published key id closes the loop.

Sequence numbers start at 0: event ``seq`` exists for ``0 <= seq < size``; anything else is 404.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization

from jpki_remote.audit import merkle
from jpki_remote.audit.events import leaf_data
from jpki_remote.audit.log import AuditLog
from jpki_remote.audit.signing import SignedTreeHead, key_id_of, load_or_create_signer, signing_key_path
from jpki_remote.config import Settings
from jpki_remote.store import Database


class NoSuchEvent(LookupError):
    pass


def signing_public_keys(settings: Settings) -> dict[str, str]:
    """``{key_id: raw public key hex}`` of the server's tree-head signing key (empty when there is none yet)."""
    path = signing_key_path(settings)
    if not path.exists():
        return {}
    public = load_or_create_signer(path).public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {key_id_of(public): raw.hex()}


def head_view(head: SignedTreeHead | None, keys: dict[str, str]) -> dict[str, Any] | None:
    if head is None:
        return None
    return {
        "tree_size": head.tree_size,
        "timestamp_ms": head.timestamp_ms,
        "root_hash": head.root_hash.hex(),
        "key_id": head.key_id,
        "signature": head.signature.hex(),
        "public_key": keys.get(head.key_id),
    }


def inclusion_proof_view(database: Database, settings: Settings, seq: int) -> dict[str, Any]:
    """The inclusion proof of event ``seq`` with ``leaf_data`` and the head's public key; :class:`NoSuchEvent`."""
    log = AuditLog(database)
    if not 0 <= seq < log.size():
        raise NoSuchEvent(seq)
    event = log.event(seq)
    if event is None:
        raise NoSuchEvent(seq)
    try:
        proof = log.inclusion_proof(seq)
    except merkle.ProofError:
        raise NoSuchEvent(seq) from None
    data = leaf_data(
        event.seq,
        event.occurred_at,
        event.actor,
        event.terminal_id,
        event.procedure_id,
        event.event_type,
        event.outcome,
        event.detail_json,
    )
    view = proof.as_dict()
    view["leaf_data"] = data.hex()
    view["signed_head"] = head_view(proof.head, signing_public_keys(settings))
    return view


def latest_head_view(database: Database, settings: Settings) -> dict[str, Any] | None:
    return head_view(AuditLog(database).latest_head(), signing_public_keys(settings))
