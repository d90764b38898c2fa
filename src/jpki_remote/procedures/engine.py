"""The durable procedure engine: every procedure is a state machine whose whole state lives in its database row.

:class:`Engine` is the façade; its parts live in one module each (one job each)::

    core.py          constants, row helpers, transitions (EngineCore)
    audit_trail.py   transactions whose audit events commit with them; the backlog (fail closed)
    starting.py      start, start_issuance (limits first, no card lookup)
    views.py         view, the agent's reply
    advancing.py     exchange, the advance loop, card conversations
    card_results.py  results of card scripts (proofs, card face, keys, COMMIT, PINs)
    server_steps.py  issuance, revocation, finish
    endings.py       failure/rollback, cancel, recovery
    proofs.py        security codes, face captures, staff checks

Nothing is kept in memory between calls. Each call loads the row (locked), moves it forward and commits; side
effects outside the database row — CA issuance, revocation, COMMIT on the card, notices — are preceded by an
``intent`` journal row committed *before* the effect and followed by a ``done`` row, so that after any crash the
recovery (:meth:`Engine.recover`) knows what may have happened. The rules:

* request ids (CA issuance) are persisted before the first APDU of the card update, so a retry re-uses them and the
  CA's per-request idempotency guarantees no second issuance;
* the old certificates stay active until the card's COMMIT; a certificate issued but never committed is revoked with
  reason **cessationOfOperation** — its key pair was discarded on the card before it was ever used, so the
  certificate ceased to be needed without any suspicion of compromise; ``superseded`` would tell relying parties to
  look for a successor that may not exist (the holder may never come back);
* a COMMIT whose answer was lost leaves the procedure active in ``confirm``: the next contact with the card (any
  terminal) reads the auth certificate actually active on it and continues from the truth;
* one procedure holds a card at a time: a UNIQUE constraint (``procedures.active_card``), taken only once the card
  has proved possession (``EngineCore._take_card``), released when the procedure ends.

Starting a procedure never reveals whether the card exists or is in use: the start answer is the same for any
well-formed card id, and only the terminal and address limits are counted; eligibility (card state, resident status,
renewal window, certificate validity), the card's own limits and whether another procedure holds the card are
checked only once the card has proved possession (a signature with a key of that card; finding S-5).
"""

from __future__ import annotations

from jpki_remote.procedures.advancing import Advancing
from jpki_remote.procedures.card_results import CardResults
from jpki_remote.procedures.core import CHALLENGE_CONTEXT, IDLE_TIMEOUT, SCRIPTS, StepFailed, utc
from jpki_remote.procedures.endings import Endings
from jpki_remote.procedures.proofs import Proofs
from jpki_remote.procedures.server_steps import ServerSteps
from jpki_remote.procedures.starting import Starting
from jpki_remote.procedures.views import Views

__all__ = ["CHALLENGE_CONTEXT", "IDLE_TIMEOUT", "SCRIPTS", "Engine", "StepFailed", "utc"]


class Engine(Starting, Proofs, Advancing, CardResults, ServerSteps, Endings, Views):
    """Drives procedures. One instance per process is fine; it holds no per-procedure state.

    Public methods: :meth:`start`, :meth:`start_issuance`, :meth:`view`, :meth:`exchange`, :meth:`request_code`,
    :meth:`verify_code`, :meth:`submit_face`, :meth:`record_staff_check`, :meth:`cancel`, :meth:`recover`,
    :meth:`flush_audit_backlog`; attributes ``db``, ``ports``, ``policy``, ``idle_timeout``."""
