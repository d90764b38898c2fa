"""Conformance: OpenSC — a client we did not write, with its built-in ``jpki`` driver — uses our card through the
OS smart-card stack (our private pcscd + vsmartcard's vpcd, the card served by :class:`VpcdCardServer`).

``pkcs15-tool`` lists the PKCS#15 objects and reads the auth certificate; ``pkcs11-tool`` (OpenSC's PKCS#11 module)
logs in with the auth PIN and signs; ``openssl`` verifies that signature with the certificate's public key; three
wrong PINs make OpenSC report the PIN locked. Card state changes (retry counters) reach the card file on disk.
On a failure, the OpenSC debug log of the failing command (OPENSC_DEBUG=9) is attached to the assertion message.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from jpki_remote.card import layout
from jpki_remote.card.factory import CreatedCard
from jpki_remote.card.store import CardStore

from .cards import AUTH_PIN, SIGN_PASSWORD
from .pcsc_stack import InsertCard, PcscStack

pytestmark = [pytest.mark.pcsc, pytest.mark.timeout(300)]

PKCS11_MODULE = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")
AUTH_TOKEN = "JPKI (User Authentication PIN)"
SIGN_TOKEN = "JPKI (Digital Signature PIN)"


@dataclass
class OpenSc:
    """Runs OpenSC's tools against the private stack, with a private configuration (no file cache, no $HOME)."""

    env: dict[str, str]
    workdir: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(list(args), env=self.env, cwd=self.workdir, capture_output=True, text=True,
                                timeout=120)
        if check and result.returncode != 0:
            pytest.fail(self._failure(args, result))
        return result

    def pkcs11(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("pkcs11-tool", "--module", str(PKCS11_MODULE), *args, check=check)

    def _failure(self, args: tuple[str, ...], result: subprocess.CompletedProcess[str]) -> str:
        debug = subprocess.run(list(args), env={**self.env, "OPENSC_DEBUG": "9"}, cwd=self.workdir,
                               capture_output=True, text=True, timeout=120)
        return (f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
                f"--- OPENSC_DEBUG=9 rerun (tail) ---\n{debug.stderr[-12000:]}")


@pytest.fixture
def opensc(pcsc_stack: PcscStack, tmp_path: Path) -> OpenSc:
    missing = [tool for tool in ("pkcs15-tool", "pkcs11-tool", "openssl") if shutil.which(tool) is None]
    if missing or not PKCS11_MODULE.exists():
        pytest.skip(f"OpenSC/openssl missing: {missing or PKCS11_MODULE} (scripts/bootstrap test installs them)")
    conf = tmp_path / "opensc.conf"
    conf.write_text("app default {\n  framework pkcs15 {\n    use_file_caching = no;\n  }\n}\n")
    home = tmp_path / "home"
    home.mkdir()
    env = pcsc_stack.env()
    env.update({"OPENSC_CONF": str(conf), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "LC_ALL": "C"})
    env.pop("OPENSC_DEBUG", None)
    return OpenSc(env, tmp_path)


@pytest.fixture
def inserted(store: CardStore, created: CreatedCard, insert_card: InsertCard) -> Iterator[CreatedCard]:
    with insert_card(store.open(created.card_id)):
        yield created


def _pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode()


def test_pkcs15_tool_lists_objects_and_reads_the_auth_certificate(
    opensc: OpenSc, inserted: CreatedCard, store: CardStore
) -> None:
    listing = opensc.run("pkcs15-tool", "--list-certificates").stdout
    for label in ("User Authentication Certificate", "Digital Signature Certificate",
                  "User Authentication Certificate CA", "Digital Signature Certificate CA"):
        assert f"[{label}]" in listing
    pins = opensc.run("pkcs15-tool", "--list-pins").stdout
    assert "User Authentication PIN" in pins and "Digital Signature PIN" in pins
    assert "Tries left     : 3" in pins and "Tries left     : 5" in pins

    pem = opensc.run("pkcs15-tool", "--read-certificate", "01").stdout
    read = x509.load_pem_x509_certificate(pem.encode())
    assert read.public_bytes(Encoding.DER) == inserted.certificates.auth
    ca_pem = opensc.run("pkcs15-tool", "--read-certificate", "03").stdout
    assert ca_pem.strip() == _pem(store.load(inserted.card_id).file("jpki", layout.JPKI_AUTH_CA_CERT)[
        : len(x509.load_pem_x509_certificate(ca_pem.encode()).public_bytes(Encoding.DER))]).strip()

    # The sign certificate is private on this card: without the sign password the card answers 6982.
    private = opensc.run("pkcs15-tool", "--read-certificate", "02", check=False)
    assert "BEGIN CERTIFICATE" not in private.stdout


def test_pkcs11_tool_signs_with_the_auth_key_and_openssl_verifies(
    opensc: OpenSc, inserted: CreatedCard, store: CardStore, tmp_path: Path
) -> None:
    slots = opensc.pkcs11("--list-slots").stdout
    assert AUTH_TOKEN in slots and SIGN_TOKEN in slots
    data = tmp_path / "challenge.bin"
    data.write_bytes(b"jpki-remote renewal challenge \x00\x01\x02")
    signature = tmp_path / "signature.bin"
    opensc.pkcs11("--token-label", AUTH_TOKEN, "--login", "--pin", AUTH_PIN, "--sign", "--mechanism",
                  "SHA256-RSA-PKCS", "--id", "01", "--input-file", str(data), "--output-file", str(signature))
    assert len(signature.read_bytes()) == 256

    cert = tmp_path / "auth.pem"
    cert.write_text(_pem(inserted.certificates.auth))
    public = tmp_path / "auth-public.pem"
    opensc.run("openssl", "x509", "-in", str(cert), "-noout", "-pubkey", "-out", str(public))
    verified = opensc.run("openssl", "dgst", "-sha256", "-verify", str(public), "-signature", str(signature),
                          str(data))
    assert "Verified OK" in verified.stdout

    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(data.read_bytes() + b"!")
    rejected = opensc.run("openssl", "dgst", "-sha256", "-verify", str(public), "-signature", str(signature),
                          str(tampered), check=False)
    assert rejected.returncode != 0 and "Verification failure" in rejected.stdout

    # A successful login leaves the counter full, and that is what the card file on disk says too.
    state = store.load(inserted.card_id)
    assert state.pin("jpki", layout.JPKI_AUTH_PIN).tries_left == 3


def test_three_wrong_auth_pins_make_opensc_report_the_pin_locked(
    opensc: OpenSc, inserted: CreatedCard, store: CardStore
) -> None:
    outcomes = []
    for _ in range(3):
        attempt = opensc.pkcs11("--token-label", AUTH_TOKEN, "--login", "--pin", "9999", "--list-objects",
                                check=False)
        assert attempt.returncode != 0
        outcomes.append(attempt.stdout + attempt.stderr)
    assert "CKR_PIN_INCORRECT" in outcomes[0] and "CKR_PIN_INCORRECT" in outcomes[1]
    assert "CKR_PIN_INCORRECT" in outcomes[2] or "CKR_PIN_LOCKED" in outcomes[2]

    slots = opensc.pkcs11("--list-slots").stdout
    auth_slot = slots[slots.index(AUTH_TOKEN):].split("Slot ")[0]
    assert "user PIN locked" in auth_slot
    pins = opensc.run("pkcs15-tool", "--list-pins").stdout
    auth_pin = pins[pins.index("User Authentication PIN"):].split("PIN [")[0]
    assert "Tries left     : 0" in auth_pin

    # Now even the right PIN is refused. The card answers 6984 like the real one; OpenSC 0.23 maps 6984 to
    # SC_ERROR_REF_DATA_NOT_USABLE and PKCS#11 CKR_GENERAL_ERROR (its "locked" report is the token flag above).
    right = opensc.pkcs11("--token-label", AUTH_TOKEN, "--login", "--pin", AUTH_PIN, "--list-objects", check=False)
    assert right.returncode != 0 and "C_Login failed" in right.stderr
    assert "CKR_PIN_INCORRECT" not in right.stderr

    state = store.load(inserted.card_id)
    assert state.pin("jpki", layout.JPKI_AUTH_PIN).tries_left == 0
    assert state.pin("jpki", layout.JPKI_SIGN_PIN).tries_left == 5  # the other PIN is untouched


def test_sign_key_with_the_sign_password(opensc: OpenSc, inserted: CreatedCard, tmp_path: Path) -> None:
    data = tmp_path / "document.txt"
    data.write_text("申請書")
    signature = tmp_path / "document.sig"
    opensc.pkcs11("--token-label", SIGN_TOKEN, "--login", "--pin", SIGN_PASSWORD, "--sign", "--mechanism",
                  "SHA256-RSA-PKCS", "--id", "02", "--input-file", str(data), "--output-file", str(signature))
    public = x509.load_der_x509_certificate(inserted.certificates.sign).public_key()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    public.verify(signature.read_bytes(), data.read_bytes(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
