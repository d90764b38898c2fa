"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification — pure functions, no storage.

Hashing (RFC 6962 §2.1): ``leaf = SHA-256(0x00 ‖ d)``, ``node = SHA-256(0x01 ‖ L ‖ R)``; the tree of ``n`` leaves
splits at ``k``, the largest power of two below ``n``. The empty tree's hash is ``SHA-256("")``.

Storage model used by :mod:`jpki_remote.audit.log`: every *perfect* subtree that is complete — level ``l`` and
index ``i`` covering leaves ``[i·2^l, (i+1)·2^l)`` — is hashed once and kept. Any range the RFC recursion asks for
(``MTH(D[a:b])`` with ``a`` aligned) is the right-folded hash of at most ``log2(n)`` such perfect subtrees (the
binary digits of ``b - a``), so a proof needs ``O(log n)`` stored hashes. The helpers below first name the ranges and
subtrees a proof needs (so the caller fetches them in one query), then assemble the proof.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Range = tuple[int, int]  # [start, end) of leaf indexes
Coord = tuple[int, int]  # (level, index) of a perfect subtree; level 0 is a leaf


class ProofError(ValueError):
    """A proof cannot be built or does not verify; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, by the RFC recursion (reference implementation, O(n))."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


# ---------------------------------------------------------------------------------------------------------------
# Which ranges a proof is made of


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The leaf ranges whose MTH form the audit path PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    ranges: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start = start + k
    ranges.reverse()
    return ranges


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The leaf ranges whose MTH form PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1), in proof order."""
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from {first} to {second} leaves")
    if first in (0, second):
        return []
    ranges: list[Range] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def perfect_subtrees(start: int, end: int) -> list[Coord]:
    """The perfect subtrees, largest first, that the RFC tree over ``[start, end)`` is built from.

    Valid for the ranges the RFC recursion produces (``start`` aligned to the range's size rounded up to a power of
    two). ``MTH(D[start:end])`` is their hashes folded from the right: ``H(P1, H(P2, … Pk))``.
    """
    coords: list[Coord] = []
    position = start
    remaining = end - start
    while remaining > 0:
        level = remaining.bit_length() - 1
        width = 1 << level
        if position % width:
            raise ProofError(f"range [{start}, {end}) is not aligned as an RFC 6962 subtree")
        coords.append((level, position >> level))
        position += width
        remaining -= width
    return coords


def fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold of perfect-subtree hashes into one MTH (see :func:`perfect_subtrees`)."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def coords_for(ranges: Iterable[Range]) -> set[Coord]:
    wanted: set[Coord] = set()
    for start, end in ranges:
        wanted.update(perfect_subtrees(start, end))
    return wanted


def range_hash(start: int, end: int, nodes: Mapping[Coord, bytes]) -> bytes:
    return fold([nodes[c] for c in perfect_subtrees(start, end)])


def build_proof(ranges: Sequence[Range], fetch: Callable[[set[Coord]], Mapping[Coord, bytes]]) -> list[bytes]:
    """Hashes for ``ranges``; ``fetch`` is called once with every perfect subtree needed."""
    wanted = coords_for(ranges)
    nodes = fetch(wanted)
    missing = wanted - set(nodes)
    if missing:
        raise ProofError(f"stored tree lacks {len(missing)} subtree hash(es), e.g. level/index {min(missing)}")
    return [range_hash(start, end, nodes) for start, end in ranges]


# ---------------------------------------------------------------------------------------------------------------
# Verification (RFC 9162)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte SHA-256 hash")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root implied by ``path`` for leaf hash ``leaf`` at ``index`` in a tree of ``size`` (§2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size} leaves")
    _check_hash(leaf, "leaf hash")
    fn, sn = index, size - 1
    result = leaf
    for element in path:
        _check_hash(element, "proof element")
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(element, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return result


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`ProofError` unless ``path`` proves leaf hash ``leaf`` at ``index`` under ``root``."""
    _check_hash(root, "root")
    if root_from_inclusion_proof(index, size, leaf, path) != root:
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows tree ``first`` is a prefix of tree ``second`` (§2.1.4.2)."""
    _check_hash(first_root, "first root")
    _check_hash(second_root, "second root")
    for element in proof:
        _check_hash(element, "proof element")
    if not 0 <= first <= second:
        raise ProofError(f"tree sizes go backwards ({first} → {second})")
    if first == second:
        if proof:
            raise ProofError("equal tree sizes need an empty proof")
        if first_root != second_root:
            raise ProofError("same tree size but different roots")
        return
    if first == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if first & (first - 1) == 0:  # exact power of two: the first tree is a subtree of the second
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for element in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(element, fr)
            sr = node_hash(element, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != first_root:
        raise ProofError("consistency proof does not lead to the first root")
    if sr != second_root:
        raise ProofError("consistency proof does not lead to the second root")


# ---------------------------------------------------------------------------------------------------------------
# Streaming construction


class CompactRange:
    """The right edge of a growing tree: one perfect subtree per set bit of the size, O(log n) memory.

    ``append`` returns the perfect subtrees it completed (level ≥ 1) so a store can keep them; ``root()`` is the
    MTH of everything appended so far.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        coords = perfect_subtrees(0, size)
        if len(coords) != len(hashes):
            raise ProofError(f"a tree of {size} leaves has {len(coords)} frontier subtrees, got {len(hashes)}")
        self.size = size
        self._stack: list[tuple[int, bytes]] = [(level, h) for (level, _i), h in zip(coords, hashes, strict=True)]

    @staticmethod
    def frontier(size: int) -> list[Coord]:
        return perfect_subtrees(0, size)

    def append(self, leaf: bytes) -> list[tuple[Coord, bytes]]:
        completed: list[tuple[Coord, bytes]] = []
        level, value = 0, leaf
        index = self.size
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            value = node_hash(left, value)
            level += 1
            index >>= 1
            completed.append(((level, index), value))
        self._stack.append((level, value))
        self.size += 1
        return completed

    def root(self) -> bytes:
        return fold([h for _level, h in self._stack])
