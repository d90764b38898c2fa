"""Append-only Merkle-tree audit log (RFC 6962 hashing), signed tree heads, inclusion/consistency proofs."""
