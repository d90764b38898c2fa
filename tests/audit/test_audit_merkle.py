"""RFC 6962 hashing and RFC 9162 proofs against published reference vectors, plus exhaustive and property checks.

Reference vectors: the Certificate Transparency test data as published in ``transparency-dev/merkle`` —
``testonly/constants.go`` (leaf inputs, root hashes for sizes 0–8, every complete subtree hash of the 8-leaf tree)
and ``proof/verify_test.go`` (inclusion proofs for leaves 1, 6, 3, 2 and consistency proofs 1→8, 6→8, 2→5, 6→7).
The same values appear in google/certificate-transparency ``cpp/merkletree/merkle_tree_test.cc``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jpki_remote.audit import merkle

LEAF_INPUTS = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                           "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
NODE_HASHES = {  # (level, index) -> hash, all complete subtrees of the 8-leaf tree
    (0, 1): "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    (0, 2): "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    (0, 7): "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    (1, 0): "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    (1, 1): "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    (1, 2): "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    (1, 3): "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    (2, 0): "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    (2, 1): "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    (3, 0): "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
INCLUSION = [  # (leaf index, tree size, path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [  # (first size, second size, proof)
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip

LEAVES = [merkle.leaf_hash(d) for d in LEAF_INPUTS]


def _store(leaves: list[bytes]) -> dict[merkle.Coord, bytes]:
    nodes: dict[merkle.Coord, bytes] = {}
    compact = merkle.CompactRange()
    for i, leaf in enumerate(leaves):
        nodes[(0, i)] = leaf
        nodes.update(compact.append(leaf))
    return nodes


def _fetcher(nodes: dict[merkle.Coord, bytes]):
    return lambda coords: {c: nodes[c] for c in coords if c in nodes}


def test_empty_tree_hash_is_sha256_of_nothing() -> None:
    assert merkle.EMPTY_ROOT.hex() == ROOTS[0]
    assert merkle.root_of([]).hex() == ROOTS[0]
    assert merkle.CompactRange().root().hex() == ROOTS[0]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_reference_for_every_size(size: int) -> None:
    assert merkle.root_of(LEAVES[:size]).hex() == ROOTS[size]
    compact = merkle.CompactRange()
    for leaf in LEAVES[:size]:
        compact.append(leaf)
    assert compact.root().hex() == ROOTS[size]
    if size:
        assert merkle.build_proof([(0, size)], _fetcher(_store(LEAVES)))[0].hex() == ROOTS[size]


def test_stored_subtree_hashes_match_the_reference() -> None:
    nodes = _store(LEAVES)
    for coord, expected in NODE_HASHES.items():
        assert nodes[coord].hex() == expected, coord
    assert len([c for c in nodes if c[0] > 0]) == 8 - 1  # n - popcount(n) internal perfect subtrees


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_reference(index: int, size: int, path: list[str]) -> None:
    built = merkle.build_proof(merkle.inclusion_ranges(index, size), _fetcher(_store(LEAVES)))
    assert [h.hex() for h in built] == path
    root = bytes.fromhex(ROOTS[size])
    merkle.verify_inclusion(index, size, LEAVES[index], [bytes.fromhex(h) for h in path], root)


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_reference(first: int, second: int, proof: list[str]) -> None:
    built = merkle.build_proof(merkle.consistency_ranges(first, second), _fetcher(_store(LEAVES)))
    assert [h.hex() for h in built] == proof
    merkle.verify_consistency(
        first, second, bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second]), [bytes.fromhex(h) for h in proof]
    )


def _inclusion_corruptions(index: int, size: int, path: list[bytes], root: bytes, leaf: bytes):
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    yield index - 1, size, leaf, path, root
    yield index + 1, size, leaf, path, root
    yield index ^ 2, size, leaf, path, root
    yield index, size * 2, leaf, path, root
    yield index, size // 2, leaf, path, root
    yield index, size, some, path, root
    yield index, size, leaf, path, merkle.EMPTY_ROOT
    yield index, size, leaf, [*path, root], root
    yield index, size, leaf, [root, *path], root
    for i in range(len(path)):
        flipped = bytearray(path[i])
        flipped[0] ^= 8
        yield index, size, leaf, [*path[:i], bytes(flipped), *path[i + 1 :]], root
    if path:
        yield index, size, leaf, path[:-1], root


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_corrupted_inclusion_proofs_are_refused(index: int, size: int, path: list[str]) -> None:
    good = [bytes.fromhex(h) for h in path]
    root = bytes.fromhex(ROOTS[size])
    for case in _inclusion_corruptions(index, size, good, root, LEAVES[index]):
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*case)


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_corrupted_consistency_proofs_are_refused(first: int, second: int, proof: list[str]) -> None:
    good = [bytes.fromhex(h) for h in proof]
    r1, r2 = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
    cases = [
        (first - 1, second, r1, r2, good),
        (first + 1, second, r1, r2, good),
        (first, second * 2, r1, r2, good),
        (first, second, r2, r1, good),
        (first, second, r1, r2, []),
        (first, second, r1, r2, [*good, r1]),
        (first, second, r1, r2, [r2, *good]),
        (first, second, r1, r2, good[:-1]),
    ]
    for i in range(len(good)):
        flipped = bytearray(good[i])
        flipped[0] ^= 16
        cases.append((first, second, r1, r2, [*good[:i], bytes(flipped), *good[i + 1 :]]))
    for case in cases:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*case)


def test_every_proof_of_every_small_tree_verifies() -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(70)]
    nodes = _store(leaves)
    roots = [merkle.root_of(leaves[:n]) for n in range(len(leaves) + 1)]
    for size in range(1, len(leaves) + 1):
        for index in range(size):
            path = merkle.build_proof(merkle.inclusion_ranges(index, size), _fetcher(nodes))
            merkle.verify_inclusion(index, size, leaves[index], path, roots[size])
        for first in range(size + 1):
            proof = merkle.build_proof(merkle.consistency_ranges(first, size), _fetcher(nodes))
            merkle.verify_consistency(first, size, roots[first], roots[size], proof)
            if 0 < first < size:
                with pytest.raises(merkle.ProofError):  # a different first tree is not consistent
                    merkle.verify_consistency(first, size, roots[first - 1], roots[size], proof)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 5000), data=st.data())
def test_large_trees_agree_with_the_reference_recursion(size: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    nodes = _store(leaves)
    root = merkle.root_of(leaves)
    assert merkle.build_proof([(0, size)], _fetcher(nodes))[0] == root
    index = data.draw(st.integers(0, size - 1))
    path = merkle.build_proof(merkle.inclusion_ranges(index, size), _fetcher(nodes))
    assert len(path) <= size.bit_length()
    merkle.verify_inclusion(index, size, leaves[index], path, root)
    first = data.draw(st.integers(0, size))
    proof = merkle.build_proof(merkle.consistency_ranges(first, size), _fetcher(nodes))
    merkle.verify_consistency(first, size, merkle.root_of(leaves[:first]), root, proof)


def test_bad_arguments_are_proof_errors_not_crashes() -> None:
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_ranges(5, 5)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_ranges(6, 5)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(0, 1, b"short", [], LEAVES[0])
    with pytest.raises(merkle.ProofError):
        merkle.build_proof(merkle.inclusion_ranges(0, 8), lambda coords: {})
