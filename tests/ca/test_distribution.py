"""CRL shard URLs: the certificate's CDP and the shard CRL's IDP are the same bytes; openssl agrees."""

from __future__ import annotations

from collections import Counter

import pytest
from cryptography import x509

from jpki_remote.ca import distribution
from jpki_remote.ca.serials import new_serial
from jpki_remote.config import Settings


def test_urls(settings: Settings) -> None:
    s = settings.with_overrides(public_base_url="https://jpki.example.jp/")
    assert distribution.crl_url(s, "signature", 3) == "https://jpki.example.jp/crl/signature/3.crl"
    assert distribution.ocsp_url(s, "authentication") == "https://jpki.example.jp/ocsp/authentication"
    with pytest.raises(ValueError):
        distribution.crl_url(s, "signature", s.crl_shards)
    with pytest.raises(ValueError):
        distribution.crl_url(s, "root", 0)


def test_shards_are_even_and_stable(settings: Settings) -> None:
    serials = [new_serial() for _ in range(16000)]
    counts = Counter(distribution.shard_for_serial(s, 16) for s in serials)
    assert set(counts) == set(range(16))
    assert min(counts.values()) > 800  # ~1000 each
    assert all(distribution.shard_for_serial(s, 16) == distribution.shard_for_serial(s, 16) for s in serials[:10])
    with pytest.raises(ValueError):
        distribution.shard_for_serial(5, 0)


def test_cdp_and_idp_name_the_same_point(settings: Settings) -> None:
    cdp = distribution.crl_distribution_points(settings, "signature", 7)
    idp = distribution.issuing_distribution_point(settings, "signature", 7)
    assert cdp[0].full_name == idp.full_name
    # DER of the GeneralNames inside both extensions is identical
    cdp_der = cdp.public_bytes()
    idp_der = idp.public_bytes()
    url = b"http://127.0.0.1:8080/crl/signature/7.crl"
    assert bytes([0x86, len(url)]) + url in cdp_der
    assert bytes([0x86, len(url)]) + url in idp_der
    assert isinstance(idp.full_name[0], x509.UniformResourceIdentifier)
    assert idp.only_contains_user_certs
