"""The OCSP responder's logic, independent of HTTP: request bytes in, response bytes (and cache facts) out.

Two entry points:

* :meth:`OcspResponder.answer_from_memory` — no I/O, no signature: parse, find the issuer, and serve a precomputed
  response from the in-memory cache. Returns ``None`` when the database or a signature is needed. Event loops call it
  inline.
* :meth:`OcspResponder.answer` — the full path (blocking: database, key store). Run it in a worker thread.

A single-certificate request without nonce is answered with the stored precomputed response (no signature). A
nonce, several certificates, an unusual CertID encoding, an unknown serial, or a missing/stale stored response are
signed live; the caller bounds how many of those run at once.

Signer renewal (``ca setup`` re-issues or replaces an authority's delegated OCSP certificate): the responder re-reads
the authorities' signer certificates at most every ``signer_check_seconds`` on the blocking path, at once when it
reads a stored response made by a signer it does not know, and on every background pass
(:meth:`OcspResponder.check_signers`). On a change it signs with the new certificate and drops every cached answer.
A stored response whose signer is not the current one is never served: it is re-signed on demand and stored back
(one signature per certificate and hash algorithm, bounded like every live signature — beyond the bound the server
answers ``tryLater``), so the steady state still costs no signature while the refresh catches up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256

from sqlalchemy import select

from jpki_remote.ca.keystore import KeyStore
from jpki_remote.ca.models import AuthorityKind, OcspResponse
from jpki_remote.ca.status.ocsp_request import CertId, MalformedRequest, OcspRequest, parse_ocsp_request
from jpki_remote.ca.status.ocsp_response import (
    INTERNAL_ERROR_RESPONSE,
    MALFORMED_REQUEST_RESPONSE,
    PRECOMPUTED_ALGORITHMS,
    UNAUTHORIZED_RESPONSE,
    ResponderIdentity,
    single_response,
)
from jpki_remote.ca.status.precompute import upsert_responses
from jpki_remote.ca.status.signing import OcspSigner, load_identities, read_statuses, status_of, utcnow
from jpki_remote.config import Settings
from jpki_remote.store import Database

log = logging.getLogger(__name__)

UNKNOWN_VALIDITY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    """Response bytes plus what HTTP caching needs. ``next_update`` is None for uncacheable answers."""

    body: bytes
    this_update: float | None = None  # epoch seconds
    next_update: float | None = None
    etag: str | None = None

    @classmethod
    def cacheable(cls, body: bytes, this_update: datetime, next_update: datetime) -> OcspAnswer:
        return cls(body, epoch(this_update), epoch(next_update), sha256(body).hexdigest()[:32])


MALFORMED = OcspAnswer(MALFORMED_REQUEST_RESPONSE)
UNAUTHORIZED = OcspAnswer(UNAUTHORIZED_RESPONSE)
INTERNAL_ERROR = OcspAnswer(INTERNAL_ERROR_RESPONSE)


def epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        return (moment - datetime(1970, 1, 1)).total_seconds()
    return moment.timestamp()


class ResponseCache:
    """Precomputed responses in memory: bounded (oldest evicted first), each entry kept ``ttl`` seconds at most.

    The TTL bounds how long another process's revocation takes to show here (the refresh writes the database).
    """

    def __init__(self, max_entries: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[AuthorityKind, str, int], tuple[float, OcspAnswer]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[AuthorityKind, str, int]) -> OcspAnswer | None:
        found = self._entries.get(key)
        if found is not None:
            expires, answer = found
            if expires > self._clock() and (answer.next_update or 0) > time.time():
                self.hits += 1
                return answer
            self._entries.pop(key, None)
        self.misses += 1
        return None

    def put(self, key: tuple[AuthorityKind, str, int], answer: OcspAnswer) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)), None)
        self._entries[key] = (self._clock() + self.ttl, answer)

    def discard(self, kind: AuthorityKind, serial: int) -> None:
        for algorithm in PRECOMPUTED_ALGORITHMS:
            self._entries.pop((kind, algorithm, serial), None)

    def clear(self) -> None:
        self._entries = {}  # rebinding, not dict.clear(): safe against a put() iterating in another thread


class OcspResponder:
    def __init__(
        self,
        db: Database,
        keys: KeyStore,
        settings: Settings,
        *,
        cache_entries: int = 200_000,
        cache_ttl: float = 5.0,
        signer_check_seconds: float | None = None,
    ) -> None:
        self.db = db
        self.keys = keys
        self.settings = settings
        self.cache = ResponseCache(cache_entries, cache_ttl)
        # how long a signer renewed by another process may go unnoticed here (at least one cache lifetime)
        self.signer_check_seconds = cache_ttl if signer_check_seconds is None else signer_check_seconds
        self._issuers: dict[tuple[str, bytes, bytes], ResponderIdentity] = {}
        self._identities: dict[AuthorityKind, ResponderIdentity] = {}
        self._retired: set[str] = {""}  # signer fingerprints known to be replaced ("": rows from before the column)
        self._signers: dict[AuthorityKind, OcspSigner] = {}
        self._lock = threading.Lock()
        self._issuers_loaded_at = 0.0
        self._signers_checked_at = 0.0
        # request bytes -> cache key, for requests that map to a precomputed response (never nonce requests)
        self._by_request: dict[bytes, tuple[tuple[AuthorityKind, str, int], float]] = {}
        self.reload_issuers()

    # --- issuers and their signers -------------------------------------------------------------------------------

    def reload_issuers(self) -> bool:
        """Re-read the authorities and their OCSP signer certificates; True if a signer changed (renewed or
        replaced), in which case the old signer is dropped and every cached answer with it."""
        identities = load_identities(self.db)
        table = {}
        for identity in identities.values():
            for algorithm in identity.name_hashes:
                table[(algorithm, identity.name_hashes[algorithm], identity.key_hashes[algorithm])] = identity
        with self._lock:
            retired = {
                old.signer_fingerprint
                for kind, old in self._identities.items()
                if kind in identities and identities[kind].signer_fingerprint != old.signer_fingerprint
            }
            self._issuers = table
            self._identities = identities
            self._signers = {
                k: s
                for k, s in self._signers.items()
                if k in identities and s.identity.signer_fingerprint == identities[k].signer_fingerprint
            }
            self._retired |= retired
            now = time.monotonic()
            self._issuers_loaded_at = now
            self._signers_checked_at = now
        if retired:
            self.cache.clear()
            self._by_request = {}
            log.info("OCSP signer certificate changed; answering with the new one")
        return bool(retired)

    def check_signers(self, *, force: bool = False) -> bool:
        """:meth:`reload_issuers` if ``signer_check_seconds`` have passed since the last read (or ``force``)."""
        if not force and time.monotonic() - self._signers_checked_at < self.signer_check_seconds:
            return False
        return self.reload_issuers()

    def current_identity(self, kind: AuthorityKind) -> ResponderIdentity | None:
        return self._identities.get(kind)

    def _issuer(self, request: OcspRequest) -> ResponderIdentity | None:
        """The one authority all CertIDs name, or None (foreign issuer, unknown hash, or a mix of issuers)."""
        found: ResponderIdentity | None = None
        for cert_id in request.cert_ids:
            identity = self._issuers.get((cert_id.hash_algorithm or "", cert_id.name_hash, cert_id.key_hash))
            if identity is None or (found is not None and identity.kind != found.kind):
                return None
            found = identity
        return found

    def _signer(self, identity: ResponderIdentity) -> OcspSigner:
        signer = self._signers.get(identity.kind)
        if signer is None or signer.identity.signer_fingerprint != identity.signer_fingerprint:
            signer = OcspSigner.open(identity, self.keys)
            with self._lock:
                self._signers[identity.kind] = signer
        return signer

    # --- answering -----------------------------------------------------------------------------------------------

    def answer_from_memory(self, der: bytes) -> OcspAnswer | None:
        """Answer without I/O if possible (malformed, foreign issuer, cached precomputed response), else None."""
        seen = self._by_request.get(der)  # the same request bytes again (relying parties repeat them): no parse
        if seen is not None:
            key, expires = seen
            if expires > time.monotonic():
                cached = self.cache.get(key)
                if cached is not None:
                    return cached
            self._by_request.pop(der, None)
        try:
            request = parse_ocsp_request(der)
        except MalformedRequest:
            return MALFORMED
        identity = self._issuer(request)
        if identity is None:
            return None if self._may_reload() else UNAUTHORIZED
        key = self._precomputed_key(identity, request)
        if key is None:
            return None
        answer = self.cache.get(key)
        if answer is not None:
            if len(self._by_request) >= self.cache.max_entries:
                self._by_request.pop(next(iter(self._by_request)), None)
            self._by_request[der] = (key, time.monotonic() + self.cache.ttl)
        return answer

    def answer(self, der: bytes) -> OcspAnswer:
        """The full path: may read the database and sign. Never raises for bad input."""
        try:
            request = parse_ocsp_request(der)
        except MalformedRequest as exc:
            log.debug("malformed OCSP request: %s", exc)
            return MALFORMED
        try:
            return self._answer(request)
        except Exception:
            log.exception("OCSP responder failed")
            return INTERNAL_ERROR

    def _answer(self, request: OcspRequest) -> OcspAnswer:
        self.check_signers()
        identity = self._issuer(request)
        if identity is None and self._may_reload():
            self.reload_issuers()
            identity = self._issuer(request)
        if identity is None:
            return UNAUTHORIZED
        key = self._precomputed_key(identity, request)
        if key is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
            stored = self._stored(key)
            if stored is not None:
                answer, signer = stored
                if signer != identity.signer_fingerprint and signer not in self._retired:
                    # made by a signer we have not seen: most likely renewed by another process since our last look
                    self.check_signers(force=True)
                    identity = self._identities.get(identity.kind, identity)
                    if signer != identity.signer_fingerprint:
                        self._retired.add(signer)  # not the current one either: re-sign (once) below
                if signer == identity.signer_fingerprint:
                    self.cache.put(key, answer)
                    return answer
        return self._sign_live(identity, request, store_as=key)

    def _precomputed_key(
        self, identity: ResponderIdentity, request: OcspRequest
    ) -> tuple[AuthorityKind, str, int] | None:
        """The cache key when a stored response can answer this request byte-for-byte, else None."""
        if request.nonce_extension is not None or len(request.cert_ids) != 1:
            return None
        cert_id: CertId = request.cert_ids[0]
        if cert_id.hash_algorithm not in PRECOMPUTED_ALGORITHMS or cert_id.serial <= 0:
            return None
        if cert_id.raw != identity.cert_id(cert_id.hash_algorithm, cert_id.serial):
            return None  # e.g. absent NULL parameters: echo the request's own encoding, signed live
        return (identity.kind, cert_id.hash_algorithm, cert_id.serial)

    def _stored(self, key: tuple[AuthorityKind, str, int]) -> tuple[OcspAnswer, str] | None:
        """The stored response and the fingerprint of its signer, or None when missing or (nearly) stale."""
        kind, algorithm, serial = key
        with self.db.session() as session:
            row = session.execute(
                select(
                    OcspResponse.der, OcspResponse.produced_at, OcspResponse.next_update, OcspResponse.signer_sha256
                ).where(
                    OcspResponse.authority == kind,
                    OcspResponse.serial_hex == format(serial, "x"),
                    OcspResponse.hash_algorithm == algorithm,
                )
            ).first()
        if row is None:
            return None
        der, produced_at, next_update, signer = row
        if epoch(next_update) <= time.time() + 60:
            return None  # stale (or about to be): sign a fresh one instead
        return OcspAnswer.cacheable(der, produced_at, next_update), signer

    def _sign_live(
        self, identity: ResponderIdentity, request: OcspRequest, store_as: tuple[AuthorityKind, str, int] | None
    ) -> OcspAnswer:
        produced = utcnow()
        with self.db.session() as session:
            statuses = read_statuses(session, identity.kind, (c.serial for c in request.cert_ids))
        validity = timedelta(hours=self.settings.ocsp_response_validity_hours)
        next_update = produced + validity
        singles = []
        for cert_id in request.cert_ids:
            status = status_of(statuses, cert_id.serial)
            if status.status == "unknown":
                next_update = min(next_update, produced + UNKNOWN_VALIDITY)
        for cert_id in request.cert_ids:
            singles.append(single_response(cert_id.raw, status_of(statuses, cert_id.serial), produced, next_update))
        body = self._signer(identity).sign(singles, produced, request.nonce_extension)
        if request.nonce_extension is not None:
            return OcspAnswer(body)  # bound to this request: never cached
        answer = OcspAnswer.cacheable(body, produced, next_update)
        if store_as is not None:
            kind, algorithm, serial = store_as
            if serial in statuses:
                with self.db.session() as session:
                    upsert_responses(
                        session,
                        [
                            {
                                "authority": kind,
                                "serial_hex": format(serial, "x"),
                                "hash_algorithm": algorithm,
                                "der": body,
                                "cert_status": statuses[serial].status.status,
                                "produced_at": produced,
                                "next_update": next_update,
                                "signer_sha256": identity.signer_fingerprint,
                            }
                        ],
                    )
            self.cache.put(store_as, answer)
        return answer

    def _may_reload(self) -> bool:
        """Foreign-looking CertIDs may name an authority set up after we started: re-read at most every 30 s."""
        return time.monotonic() - self._issuers_loaded_at > 30
