"""Procedures (手続): durable state machines for renewal, PIN reset/change, issuance, revocation; policy."""
