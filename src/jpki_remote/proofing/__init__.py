"""Identity proofing (本人確認): face match, liveness, security codes and their delivery, rate limits.

Interfaces the procedures call (see each module's docstring and ``docs/security-codes-and-limits.md``):

* :class:`jpki_remote.proofing.codes.SecurityCodes` — ``issue(procedure_id, purpose, contact) -> IssuedCode``,
  ``verify(procedure_id, purpose, entered) -> CodeOutcome``;
* :mod:`jpki_remote.proofing.delivery` — ``Deliverer.send(contact, message)``, ``deliverer_from_settings``;
* :mod:`jpki_remote.proofing.notify` — ``notify_holder(contacts, event, db=, settings=)``, ``deliver_pending``;
* :class:`jpki_remote.proofing.limits.Limits` — ``check_and_count(kind, card_id=, terminal_id=, address=)
  -> Allowed | LockedOut``, ``status``, ``lift``;
* ``proofing.face`` / ``proofing.liveness`` — face comparison and the liveness challenge.
"""
