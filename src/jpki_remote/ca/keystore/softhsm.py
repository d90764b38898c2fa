"""A throwaway SoftHSM2 token in a directory of its own — for tests, benchmarks and demos, never production."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from jpki_remote.ca.keystore.base import KeyStoreError

SOFTHSM_MODULE = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class SoftHsmToken:
    module: str
    label: str
    user_pin: str
    conf: Path  # SOFTHSM2_CONF must point here before the library is (re)initialised


def softhsm_available() -> bool:
    return shutil.which("softhsm2-util") is not None and Path(SOFTHSM_MODULE).exists()


def create_softhsm_token(directory: Path, label: str | None = None) -> SoftHsmToken:
    """Initialise a fresh token under ``directory`` with a config file of its own and random PINs."""
    if not softhsm_available():
        raise KeyStoreError("SoftHSM2 is not installed (apt-get install softhsm2)")
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    label = label or f"jpki-{secrets.token_hex(4)}"
    pin = secrets.token_hex(4)
    result = subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", secrets.token_hex(8), "--pin", pin],
        capture_output=True,
        text=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=False,
    )
    if result.returncode != 0:
        raise KeyStoreError(f"softhsm2-util --init-token failed: {result.stderr.strip() or result.stdout.strip()}")
    return SoftHsmToken(SOFTHSM_MODULE, label, pin, conf)
