"""Settings, read once from the environment (prefix ``JPKI_``) with embedded defaults.

Every value has a default that runs the whole system on one machine: SQLite in the data directory, an encrypted
key file for the CA keys, virtual cards, and a development outbox instead of SMTP/SMS. Production deployments set
the variables below (see README "Configuration").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

ENV_PREFIX = "JPKI_"
# JPKI_ variables read where they are used, not settings of a deployment; load_settings() lets them pass.
PROCESS_SWITCHES = {
    "JPKI_AUDIT_STRICT": "audit/detail.py: an audit detail outside the allow-list raises (default under pytest)",
    "JPKI_SHARED_DIR": "bench face / tests: the folder holding the shared test photos",
    "JPKI_BENCH_NETNS": "bench ocsp: set in its own re-execution inside a private network namespace",
}


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "jpki-remote"


@dataclass(frozen=True)
class Settings:
    """All configuration of one jpki-remote process. Field ``x`` is read from ``JPKI_X``."""

    data_dir: Path = field(default_factory=_default_data_dir)
    # Empty means sqlite:///<data_dir>/jpki.db. PostgreSQL: postgresql+psycopg://user@127.0.0.1:5432/dbname
    database_url: str = ""
    # Empty means rate-limit counters live in the database; set redis://127.0.0.1:6379/0 in production.
    redis_url: str = ""
    redis_key_prefix: str = "jpki:"  # every Redis key this deployment writes starts with it

    # CA key store: "file" (encrypted PKCS#8 files in <data_dir>/keys) or "pkcs11".
    keystore: str = "file"
    keystore_passphrase: str = ""  # empty: a random one is generated and kept in <data_dir>/keys/.passphrase (0600)
    pkcs11_module: str = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"
    pkcs11_token_label: str = "jpki-ca"  # noqa: S105 - a label, not a secret
    pkcs11_user_pin: str = ""
    # Issuer SCP03 master keys: "file" (<data_dir>/issuer-keys, development) or "pkcs11" (non-extractable AES keys on
    # the token above; card keys are derived inside the HSM — production).
    issuer_keystore: str = "file"
    # Certification authorities: organisation in the CA names (the real ones say O=JPKI; tests use JPKI-TEST),
    # CA and delegated OCSP responder certificate lifetimes, and lint worker processes (0: lint in the calling thread).
    ca_organization: str = "JPKI-TEST"
    ca_validity_years: int = 10
    ocsp_signer_validity_days: int = 365
    ca_lint_workers: int = 0

    # CRL / OCSP publication
    public_base_url: str = "http://127.0.0.1:8080"
    crl_shards: int = 16
    ocsp_response_validity_hours: int = 24
    ocsp_refresh_before_hours: int = 8
    crl_validity_hours: int = 24  # nextUpdate - thisUpdate of every shard CRL
    crl_republish_before_hours: int = 8  # rebuild an unchanged shard when its nextUpdate is this close
    ocsp_cache_seconds: float = 5.0  # in-memory cache of precomputed responses: bounds how late a revocation shows
    status_poll_seconds: int = 60  # background CRL publisher / OCSP refresher period

    # Identity proofing
    # Euclidean distance of dlib encodings; calibrated in docs/face-verification.md (library default 0.6 is too loose)
    face_threshold: float = 0.56
    security_code_ttl_seconds: int = 600
    security_code_max_failures: int = 5  # per procedure and purpose, across resends
    security_code_resend_seconds: int = 60  # cooldown between two codes for one procedure
    security_code_max_issues: int = 5  # codes one procedure may request (limits SMS pumping)
    # HMAC key (hex, >= 32 bytes) for code hashes and rate-limit subjects; empty: generated once and kept in
    # <data_dir>/secrets/proofing.key (0600). All app servers of one deployment must share it.
    proofing_secret: str = ""
    # Delivery of security codes and notices: "outbox" (development), "smtp", "sms", or "smtp,sms".
    delivery: str = "outbox"
    # `jpki-remote serve` refuses delivery "outbox" (clear codes kept in the database) unless this is set or
    # --allow-dev-outbox is given: a deployment that forgets JPKI_DELIVERY must not run without the code factor.
    allow_dev_outbox: bool = False
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "jpki-remote@localhost"
    sms_gateway_url: str = ""
    sms_gateway_token: str = ""  # bearer token for the SMS gateway
    sms_gateway_retries: int = 3  # extra tries on 5xx / connection errors, with exponential backoff
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    delivery_timeout_seconds: float = 10.0
    notification_max_attempts: int = 10  # then the notice is marked failed for an operator
    notification_poll_seconds: int = 30  # how often `serve` retries pending notices (deliver_pending)

    # Audit log: Ed25519 key for signed tree heads (PEM, 0600); empty: <data_dir>/audit/signing-key.pem
    audit_signing_key: str = ""
    audit_sth_interval_seconds: int = 60  # a single append signs a new tree head when the last is older

    # Web
    host: str = "127.0.0.1"
    port: int = 8080
    session_idle_seconds: int = 180
    # Admin API bearer token; empty: a random one is generated into <data_dir>/admin-token (0600).
    admin_token: str = ""
    # Signed-in admin and counter staff (cookie sessions): end after this many idle minutes, and at most after
    # login_max_hours; a staff account locks for login_lock_minutes after login_max_failures wrong passwords.
    login_idle_minutes: int = 15
    login_max_hours: int = 12
    login_max_failures: int = 5
    login_lock_minutes: int = 15
    # Idle minutes after which an unfinished procedure is recovered (finished or rolled back).
    procedure_idle_minutes: int = 15
    # Terminal agent: how long one call to an unreachable server (restart, database briefly down: 503) is retried
    # before the relay gives up and the page shows the error; the procedure stays resumable on the server.
    terminal_retry_seconds: float = 120.0
    max_request_bytes: int = 8_000_000
    # Reverse proxies whose X-Forwarded-For is believed (comma-separated IPs or CIDRs); empty: none, the client
    # address is the TCP peer. Rate limits per client address use the result.
    trusted_proxies: str = ""

    # Demo (`jpki-remote demo`): folder of face photos, one sub-folder per person; empty: ../shared/data/faces
    # beside the checkout. Only read; nothing of it is copied into the repository.
    demo_faces: str = ""

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'jpki.db'}"

    def with_overrides(self, **values: object) -> Settings:
        return replace(self, **values)  # type: ignore[arg-type]


def _coerce(raw: str, current: object) -> object:
    if isinstance(current, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    if isinstance(current, Path):
        return Path(raw).expanduser()
    return raw


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read settings from ``environ`` (default: the process environment). Unknown JPKI_ variables are an error."""
    env = os.environ if environ is None else environ
    base = Settings()
    known = {f.name for f in fields(Settings)}
    values: dict[str, object] = {}
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key in PROCESS_SWITCHES:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in known:
            names = ", ".join(sorted(ENV_PREFIX + k.upper() for k in known))
            raise ValueError(f"unknown setting {key}; known: {names}")
        try:
            values[name] = _coerce(raw, getattr(base, name))
        except ValueError as exc:
            raise ValueError(f"{key}={raw!r} is not valid: {exc}") from exc
    return replace(base, **values)  # type: ignore[arg-type]
