"""A public description of a card's state for people and tools: never a PIN value, a key, or personal file content.

What it shows: lifecycle and serial, for each applet (AP) its PINs (tries left, blocked) and which files hold data;
for the JPKI AP the certificates present with subject, serial and validity, and any pending keys/certificates of an
unfinished renewal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography import x509

from jpki_remote.card import layout
from jpki_remote.card.issuer_domain import ISSUER_AUTH_LIMIT
from jpki_remote.card.state import CardState
from jpki_remote.card.tlv import TlvError, parse_header

CERTIFICATE_EFS = (
    ("auth certificate", layout.JPKI_AUTH_CERT),
    ("auth CA certificate", layout.JPKI_AUTH_CA_CERT),
    ("sign certificate", layout.JPKI_SIGN_CERT),
    ("sign CA certificate", layout.JPKI_SIGN_CA_CERT),
)


@dataclass(frozen=True)
class CertificateView:
    name: str
    ef: str
    subject: str
    issuer: str
    serial: str
    not_before: str
    not_after: str
    expired: bool


@dataclass(frozen=True)
class PinView:
    applet: str
    ef: str
    name: str
    tries_left: int
    max_tries: int | None
    blocked: bool


@dataclass(frozen=True)
class CardView:
    card_id: str
    serial: str
    lifecycle: str
    generation: int
    applets: dict[str, list[str]] = field(default_factory=dict)  # applet -> EFs holding data
    certificates: list[CertificateView] = field(default_factory=list)
    pins: list[PinView] = field(default_factory=list)
    pending_keys: list[str] = field(default_factory=list)
    pending_certificates: list[CertificateView] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    issuer_auth_failures: int = 0  # failed issuer authentications in a row
    issuer_locked: bool = False  # the issuer domain refuses every session (6983): no remote renewal or PIN reset

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def der_prefix(content: bytes) -> bytes | None:
    """The DER object at the start of an EF (files carry filler after it); None if the EF holds none."""
    if not content or content[0] in (0x00, 0xFF):
        return None
    try:
        _tag, length, header = parse_header(content)
    except TlvError:
        return None
    if header + length > len(content):
        return None
    return content[: header + length]


def certificate_view(name: str, fid: int, der: bytes, now: dt.datetime) -> CertificateView:
    cert = x509.load_der_x509_certificate(der)
    return CertificateView(
        name=name,
        ef=f"{fid:04X}",
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:X}",
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        expired=now > cert.not_valid_after_utc,
    )


def describe(state: CardState, now: dt.datetime | None = None) -> CardView:
    """The public view of ``state`` (reads only public parts: file contents of certificate EFs, retry counters)."""
    now = now or dt.datetime.now(dt.UTC)
    view = CardView(card_id=state.card_id, serial=state.serial, lifecycle=state.lifecycle,
                    generation=state.generation, issuer_auth_failures=state.issuer_auth_failures,
                    issuer_locked=state.issuer_auth_failures >= ISSUER_AUTH_LIMIT)
    for applet in layout.APPLETS:
        files = state.files.get(applet.name, {})
        present = [f"{fid:04X} {applet.efs[fid].name}" for fid in sorted(files)
                   if fid in applet.efs and files[fid].strip(bytes([applet.efs[fid].filler]))]
        present += [f"{fid:04X} {applet.efs[fid].name} ({len(recs)} records)"
                    for fid, recs in sorted(state.records.get(applet.name, {}).items()) if fid in applet.efs]
        view.applets[applet.name] = present
        for fid, pin in sorted(state.pins.get(applet.name, {}).items()):
            pin_def = applet.pins.get(fid)
            view.pins.append(PinView(applet.name, f"{fid:04X}", pin_def.name if pin_def else "key",
                                     pin.tries_left, pin.max_tries, pin.blocked))
    for name, fid in CERTIFICATE_EFS:
        der = der_prefix(state.file("jpki", fid) or b"")
        if der is None:
            continue
        try:
            view.certificates.append(certificate_view(name, fid, der, now))
        except ValueError as exc:
            view.problems.append(f"EF {fid:04X} ({name}) does not hold a valid certificate: {exc}")
    key_names = {fid: key.name for fid, key in layout.JPKI.keys.items()}
    view.pending_keys.extend(f"{fid:04X} {key_names.get(fid, 'key')}" for fid in sorted(state.pending_keys))
    for fid, der in sorted(state.pending_certs.items()):
        try:
            view.pending_certificates.append(certificate_view(f"pending for {key_names.get(fid, 'key')}", fid, der,
                                                              now))
        except ValueError as exc:
            view.problems.append(f"pending certificate for key {fid:04X} is not valid: {exc}")
    return view


def render(view: CardView) -> str:
    """Human-readable text of a :class:`CardView`."""
    lines = [f"card {view.card_id}", f"  serial     {view.serial}", f"  lifecycle  {view.lifecycle}",
             f"  writes     {view.generation}"]
    if view.issuer_locked:
        lines.append("  issuer     LOCKED (too many failed issuer authentications: no renewal or PIN reset)")
    elif view.issuer_auth_failures:
        lines.append(f"  issuer     {view.issuer_auth_failures} failed authentication(s) in a row")
    lines.append("  certificates:")
    if not view.certificates:
        lines.append("    (none)")
    for cert in view.certificates:
        flag = "  EXPIRED" if cert.expired else ""
        lines += [f"    {cert.name} (EF {cert.ef}){flag}", f"      subject  {cert.subject}",
                  f"      issuer   {cert.issuer}", f"      serial   {cert.serial}",
                  f"      valid    {cert.not_before} .. {cert.not_after}"]
    if view.pending_keys or view.pending_certificates:
        lines.append("  pending renewal:")
        lines += [f"    key {key}" for key in view.pending_keys]
        lines += [f"    certificate {c.name}: {c.subject}, serial {c.serial}, until {c.not_after}"
                  for c in view.pending_certificates]
    lines.append("  PINs:")
    for pin in view.pins:
        limit = "no limit" if pin.max_tries is None else f"{pin.tries_left}/{pin.max_tries} tries left"
        lines.append(f"    {pin.applet:8} {pin.ef} {pin.name:24} {'BLOCKED' if pin.blocked else limit}")
    lines.append("  applets (files holding data):")
    for applet, files in view.applets.items():
        lines.append(f"    {applet:8} {', '.join(files) if files else '-'}")
    lines += [f"  problem: {problem}" for problem in view.problems]
    return "\n".join(lines)
