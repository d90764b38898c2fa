"""The secrets scanner finds what it must (so a clean hygiene run means something) and ignores random blobs."""

from __future__ import annotations

import base64
import secrets

from scanning import Scanner

FRAME = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 4


def test_scanner_finds_secrets_in_their_usual_disguises() -> None:
    scanner = Scanner({"auth": "1234", "sign": "ABC123", "code": "482913"}, [FRAME])
    assert scanner.text("log", "verify pin=1234 ok")
    assert scanner.text("log", '{"entered": "482913"}')
    assert scanner.text("log", "sent password ABC123.")
    assert scanner.text("log", "APDU 002000800431323334")  # the PIN's ASCII inside a hex APDU
    assert scanner.text("db", base64.b64encode(FRAME).decode())  # a JPEG as base64
    assert scanner.text("db", FRAME.hex())  # … as hex
    assert scanner.blob("file", b"xx" + FRAME[400:700] + b"yy")  # raw bytes of the frame
    assert scanner.blob("file", b"\x89PNG\r\n\x1a\n....")
    # the card file may carry the card's own photo: image magic allowed, secrets still not
    assert not scanner.blob("card", b"\x00\x00\x00\x0cjP  \r\n\x87\n", images_allowed=True)
    assert scanner.blob("card", b'{"pin": "1234"}', images_allowed=True)


def test_scanner_ignores_random_hex_and_base64() -> None:
    scanner = Scanner({"auth": "1234", "code": "482913"}, [FRAME])
    for _ in range(200):
        blob = secrets.token_bytes(512)
        text = blob.hex() + " " + base64.b64encode(blob).decode()
        text = text.replace("1234", "0000").replace("482913", "000000")  # only a standalone value may count
        assert not scanner.text("random", text), text
    assert not scanner.text("hex", "ab1234cd")  # inside a hex string
    assert not scanner.text("date", "2026-12-04 12:34")
