"""`jpki-remote card …`: create, inspect and use virtual cards; plug one into the OS smart-card stack; talk to readers.

    card new --photo FACE.jpg [...]    a personalised card for a test resident, certificates from the project's CAs
    card new --delivered --photo …     the card as delivered to the counter (no PINs, keys, certificates yet)
    card list                          the cards in <data_dir>/cards
    card show ID [--json]              state without secrets: APs, certificates, PIN tries left / blocked
    card insert ID [--port 35963]      serve the card to vpcd (pcscd's virtual reader) until Ctrl-C
    card apdu ID HEX…                  send raw APDUs to the card in-process, print responses and SW meanings
    card apdu --reader NAME HEX…       the same through PC/SC to a real (or vpcd) reader
    card readers                       the PC/SC readers and whether they hold a card
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import re
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A user-facing error: printed as ``jpki-remote card: <message>``, exit code in ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to ``subparsers`` and its benchmarks to ``bench``."""
    card = subparsers.add_parser("card", help="virtual My Number Cards and card readers",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cards-dir", type=Path, default=None,
                        help="card directory (default: <data_dir>/cards; data_dir from JPKI_DATA_DIR)")
    card.set_defaults(handler=lambda _args: _usage(card))
    sub = card.add_subparsers(dest="card_command", metavar="COMMAND")

    p = sub.add_parser("new", parents=[common], help="create a personalised card for a test resident",
                       description="Manufacture a card and personalise it over the issuer secure channel, with "
                                   "certificates from the project's CAs (run `jpki-remote ca setup` first). PINs "
                                   "not given are generated and printed once.")
    p.add_argument("--id", dest="card_id", help="card id (default: random)")
    p.add_argument("--photo", type=Path, required=True, help="face photo (any image format; stored as JPEG 2000)")
    p.add_argument("--name", default="番号　花子", help="氏名, family and given name separated by U+3000")
    p.add_argument("--name-kana", default="バンゴウ　ハナコ", help="ふりがな")
    p.add_argument("--address", default="東京都千代田区霞が関２丁目１番２号", help="住所")
    p.add_argument("--birth-date", default="1980-02-17", help="YYYY-MM-DD")
    p.add_argument("--sex", default="2", choices=["1", "2", "9", "0"], help="1 male, 2 female, 9 n/a, 0 unknown")
    p.add_argument("--my-number", default="123456789018", help="12 digits (照合番号A)")
    p.add_argument("--municipality-code", default="13101", help="5-digit 全国地方公共団体コード")
    p.add_argument("--prefecture", default="Tokyo-to", help="romanised, for the signature certificate subject")
    p.add_argument("--city", default="Chiyoda-ku", help="romanised, for the signature certificate subject")
    p.add_argument("--card-expiry", default=None, help="YYYY-MM-DD (default: 10th birthday-anniversary from now)")
    p.add_argument("--security-code", default=None, help="4 digits printed on the card (default: random)")
    p.add_argument("--auth-pin", help="利用者証明用暗証番号, 4 digits (default: random)")
    p.add_argument("--sign-password", help="署名用パスワード, 6–16 of A–Z 0–9 (default: random; none under 15)")
    p.add_argument("--text-pin", help="券面事項入力補助用暗証番号, 4 digits (default: random)")
    p.add_argument("--juki-pin", help="住民基本台帳用暗証番号, 4 digits (default: random)")
    p.add_argument("--delivered", action="store_true",
                   help="stop where the card centre stops: card face, text and card info written, but no PINs, "
                        "JPKI keys or certificates (for issuance at the counter; no CA needed)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_guarded(cmd_new))

    p = sub.add_parser("list", parents=[common], help="list the cards in the card directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_guarded(cmd_list))

    p = sub.add_parser("show", parents=[common], help="a card's state without secrets")
    p.add_argument("card_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_guarded(cmd_show))

    p = sub.add_parser("insert", parents=[common],
                       help="insert the card into vpcd (pcscd's virtual reader) until Ctrl-C")
    p.add_argument("card_id", metavar="ID")
    p.add_argument("--host", default="127.0.0.1", help="where vpcd listens (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=35963,
                   help="vpcd port: 35963 = reader 'Virtual PCD 00 00', 35964 = '… 00 01' (default 35963)")
    p.set_defaults(handler=_guarded(cmd_insert))

    p = sub.add_parser("apdu", parents=[common], help="send raw APDUs (hex) and print the responses",
                       description="Send APDUs one after the other in one session (security state is kept between "
                                   "them). Each HEX is one APDU; spaces and colons inside it are ignored.")
    p.add_argument("--reader", metavar="NAME", help="send through PC/SC to the reader whose name contains NAME "
                                                     "(then every positional argument is an APDU)")
    p.add_argument("args", nargs="+", metavar="ID|HEX", help="card id (unless --reader) followed by APDUs")
    p.set_defaults(handler=_guarded(cmd_apdu))

    p = sub.add_parser("readers", help="list PC/SC readers")
    p.set_defaults(handler=_guarded(cmd_readers))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _guarded(handler: Any) -> Any:
    """Turn the expected failures (unknown id, bad hex, no reader, unreadable card file) into a message + exit code."""

    def run(args: argparse.Namespace) -> int:
        from jpki_remote.card.state import CardStateError
        from jpki_remote.card.transports.base import TransportError

        try:
            return int(handler(args))
        except CommandError as exc:
            print(f"jpki-remote card: {exc}", file=sys.stderr)
            return exc.code
        except (TransportError, CardStateError) as exc:
            print(f"jpki-remote card: {exc}", file=sys.stderr)
            return EXIT_FAILURE

    run.__name__ = handler.__name__
    return run


# ---- the card directory --------------------------------------------------------------------------------------------

def cards_dir(args: argparse.Namespace) -> Path:
    if getattr(args, "cards_dir", None):
        return Path(args.cards_dir)
    from jpki_remote.config import load_settings

    try:
        settings = load_settings()
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    return settings.data_dir / "cards"


def open_store(args: argparse.Namespace, *, create: bool = False) -> Any:
    from jpki_remote.card.store import CardStore

    directory = cards_dir(args)
    if not create and not directory.is_dir():
        raise CommandError(f"no card directory at {directory} (create a card first, or pass --cards-dir)")
    return CardStore(directory)


def check_known(store: Any, card_id: str) -> None:
    try:
        known = store.exists(card_id)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    if not known:
        ids = store.ids()
        hint = f"; known cards: {', '.join(ids[:10])}{' …' if len(ids) > 10 else ''}" if ids else "; no cards yet"
        raise CommandError(f"unknown card {card_id!r} in {store.directory}{hint}")


@contextlib.contextmanager
def card_in_use(store: Any, card_id: str) -> Iterator[None]:
    """Hold the card for this process (``CardStore.lock``): a second ``insert``/``apdu``/agent on it is refused."""
    from jpki_remote.card.store import CardInUseError

    try:
        with store.lock(card_id):
            yield
    except CardInUseError as exc:
        raise CommandError(str(exc)) from None


# ---- new -----------------------------------------------------------------------------------------------------------

_DIGITS4 = re.compile(r"[0-9]{4}")
_SIGN_PASSWORD = re.compile(r"[A-Z0-9]{6,16}")


def _date_arg(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be YYYY-MM-DD, got {value!r}", EXIT_USAGE) from None


def _pin_arg(value: str | None, option: str, pattern: re.Pattern[str], generate: Callable[[], str]) -> tuple[str, bool]:
    """(value, generated?)"""
    if value is None:
        return generate(), True
    if not pattern.fullmatch(value):
        rule = "4 digits" if pattern is _DIGITS4 else "6–16 characters of A–Z and 0–9"
        raise CommandError(f"{option} must be {rule}", EXIT_USAGE)
    return value, False


def _random_digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


def _random_sign_password() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I/O/0/1: it is read off a screen
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(8))
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            return value


def _age(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _anniversary(birth: dt.date, years_from: dt.date, years: int) -> dt.date:
    """The holder's birthday in the year ``years`` after ``years_from`` (cards expire on a birthday)."""
    year = years_from.year + years
    try:
        return birth.replace(year=year)
    except ValueError:  # 29 February
        return dt.date(year, 3, 1)


def certificates_from(ca: Any, holder_ref: str, *, prefecture: str, city: str) -> Any:
    """A ``create_card`` certificate callback: ``ca`` (a :class:`jpki_remote.ca.authority.CertificateAuthority`)
    issues the auth/sign pair for the keys the card generated, idempotently per ``holder_ref``."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from jpki_remote.ca.holder import HolderIdentity, Sex
    from jpki_remote.card.factory import IssuedCertificates

    def issue(auth_public: Any, sign_public: Any, holder: Any) -> Any:
        identity = HolderIdentity(
            holder_ref=holder_ref, municipality_code=holder.municipality_code, birth_date=holder.birth_date,
            name=holder.name, sex={"1": Sex.MALE, "2": Sex.FEMALE}.get(holder.sex, Sex.UNKNOWN),
            address=holder.address, prefecture=prefecture, city=city,
        )
        pair = ca.issue_pair(f"card-new-{holder_ref}", identity, auth_public, sign_public, holder.card_expiry)
        auth_ca = ca.authority_certificate("authentication").public_bytes(Encoding.DER)
        sign_ca = ca.authority_certificate("signature").public_bytes(Encoding.DER)
        return IssuedCertificates(
            auth=pair.authentication.der, auth_ca=auth_ca,
            sign=pair.signature.der if pair.signature else None, sign_ca=sign_ca if pair.signature else None,
        )

    return issue


@contextlib.contextmanager
def project_ca(settings: Any) -> Iterator[Any]:
    """The project's CAs as configured (database + key store from the settings)."""
    from jpki_remote.ca.authority import CertificateAuthority
    from jpki_remote.ca.keystore import open_keystore
    from jpki_remote.store import Database

    db = Database(settings.effective_database_url)
    try:
        keystore = open_keystore(settings)
        try:
            yield CertificateAuthority(db, keystore, settings)
        finally:
            keystore.close()
    finally:
        db.dispose()


def cmd_new(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from jpki_remote.ca.errors import CaError
    from jpki_remote.card.factory import CardPins, create_card
    from jpki_remote.card.personalise import HolderDataError, HolderRecord
    from jpki_remote.config import load_settings

    try:
        settings = load_settings()
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    store = open_store(args, create=True)
    card_id = args.card_id or secrets.token_hex(6)
    try:
        if store.exists(card_id):
            raise CommandError(f"card {card_id} already exists in {store.directory}")
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    try:
        photo = args.photo.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read the photo: {exc}", EXIT_USAGE) from exc
    today = dt.date.today()
    birth = _date_arg(args.birth_date, "--birth-date")
    expiry = _date_arg(args.card_expiry, "--card-expiry") if args.card_expiry else _anniversary(birth, today, 10)
    security_code = args.security_code or _random_digits(4)
    if not _DIGITS4.fullmatch(security_code):
        raise CommandError("--security-code must be 4 digits", EXIT_USAGE)
    holder = HolderRecord(name=args.name, address=args.address, birth_date=birth, sex=args.sex,
                          my_number=args.my_number, municipality_code=args.municipality_code, card_expiry=expiry,
                          security_code=security_code, photo=photo, name_kana=args.name_kana or None)
    if args.delivered:
        return _new_delivered(args, settings, store, card_id, holder)
    minor = _age(birth, today) < 15
    if minor and args.sign_password:
        raise CommandError("holders under 15 get no signature certificate: drop --sign-password", EXIT_USAGE)
    auth, auth_new = _pin_arg(args.auth_pin, "--auth-pin", _DIGITS4, lambda: _random_digits(4))
    text, text_new = _pin_arg(args.text_pin, "--text-pin", _DIGITS4, lambda: _random_digits(4))
    juki, juki_new = _pin_arg(args.juki_pin, "--juki-pin", _DIGITS4, lambda: _random_digits(4))
    sign, sign_new = (None, False) if minor else _pin_arg(args.sign_password, "--sign-password", _SIGN_PASSWORD,
                                                           _random_sign_password)
    try:
        master_key = issuer_master_key(settings)
        pins = CardPins(auth=auth, sign=sign, text=text, juki=juki)
        with project_ca(settings) as ca:
            certificates = certificates_from(ca, card_id, prefecture=args.prefecture, city=args.city)
            made = create_card(holder, issuer_master_key=master_key, pins=pins, certificates=certificates,
                               store=store, card_id=card_id)
    except HolderDataError as exc:  # create_card adds the card to the store only once complete
        raise CommandError(f"holder data: {exc}", EXIT_USAGE) from exc
    except CaError as exc:
        raise CommandError(f"the CA refused: {exc}") from exc
    except SQLAlchemyError as exc:
        first = str(exc).splitlines()[0]
        raise CommandError(f"the CA database is not ready (run `jpki-remote ca setup` first): {first}") from exc
    except FileExistsError as exc:
        raise CommandError(str(exc)) from exc
    generated = {name: value for name, value, new in (("auth PIN", auth, auth_new), ("sign password", sign, sign_new),
                                                       ("text PIN", text, text_new), ("residence PIN", juki, juki_new))
                 if new}
    if args.json:
        print(json.dumps({"card_id": made.card_id, "serial": made.serial,
                          "verification_code_b": made.verification_code_b, "generated_pins": generated},
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"card {made.card_id} created in {store.directory} (serial {made.serial})")
    print(f"  expiry {expiry}, security code {security_code}, 照合番号B {made.verification_code_b}")
    if minor:
        print("  holder under 15: no signature certificate")
    if generated:
        print("  generated passwords (shown once, not stored anywhere in clear):")
        for name, value in generated.items():
            print(f"    {name:14} {value}")
    print(f"next: jpki-remote card show {made.card_id}  /  jpki-remote card insert {made.card_id}")
    return EXIT_OK


def _new_delivered(args: argparse.Namespace, settings: Any, store: Any, card_id: str, holder: Any) -> int:
    """``card new --delivered``: the card as the card centre delivers it to the counter (no PINs, keys, certs)."""
    from cryptography.hazmat.primitives import serialization

    from jpki_remote.card.factory import deliver_card
    from jpki_remote.card.personalise import HolderDataError

    given = [option for option, value in (("--auth-pin", args.auth_pin), ("--sign-password", args.sign_password),
                                          ("--text-pin", args.text_pin), ("--juki-pin", args.juki_pin)) if value]
    if given:
        raise CommandError(f"a delivered card has no holder PINs (the holder sets them at the counter): drop "
                           f"{', '.join(given)}", EXIT_USAGE)
    try:
        made = deliver_card(holder, issuer_master_key=issuer_master_key(settings), store=store, card_id=card_id)
    except HolderDataError as exc:
        raise CommandError(f"holder data: {exc}", EXIT_USAGE) from exc
    except FileExistsError as exc:
        raise CommandError(str(exc)) from exc
    public_key = made.card_public_key.public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).hex()
    facts = {"card_id": made.card_id, "serial": made.serial, "card_expiry": holder.card_expiry.isoformat(),
             "security_code": holder.security_code, "verification_code_b": made.verification_code_b,
             "diversification_data": made.kdd.hex(), "card_public_key": public_key}
    if args.json:
        print(json.dumps(facts, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"card {made.card_id} delivered to {store.directory} (serial {made.serial}): card face, 照合番号A/B and "
          "card info written; no PINs, JPKI keys or certificates yet")
    print(f"  expiry {holder.card_expiry}, security code {holder.security_code}, 照合番号B {made.verification_code_b}")
    print(f"  for counter issuance: diversification data {facts['diversification_data']}")
    print(f"                        card public key (SPKI) {public_key}")
    return EXIT_OK


def issuer_master_key(settings: Any) -> Any:
    """The issuer's SCP03 master key (version 0) the server will use for this card's renewals and PIN resets:
    ``<data_dir>/issuer-keys`` (:mod:`jpki_remote.issuer_keys`), created on first use — or, with
    ``issuer_keystore = "pkcs11"``, the HSM key store itself (the card's keys are derived inside the HSM)."""
    from jpki_remote.issuer_keys import FileIssuerKeys, IssuerKeyError, issuer_keys_from_settings

    try:
        keys = issuer_keys_from_settings(settings)
        if isinstance(keys, FileIssuerKeys):
            return keys.master_key(0)
        keys.card_keys(0, bytes(10))  # fail here, not half-way through a card, if version 0 is missing
        return keys
    except (IssuerKeyError, OSError) as exc:
        raise CommandError(f"the issuer master key is not usable: {exc}") from exc


# ---- list / show ---------------------------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    from jpki_remote.card.layout import HOLDER_PINS
    from jpki_remote.card.report import describe
    from jpki_remote.card.state import CardStateError

    holder = set(HOLDER_PINS.values())
    store = open_store(args)
    rows: list[dict[str, Any]] = []
    for card_id in store.ids():
        try:
            view = describe(store.load(card_id))
        except CardStateError as exc:
            rows.append({"card_id": card_id, "error": str(exc)})
            continue
        auth = next((c for c in view.certificates if c.ef == "000A"), None)
        rows.append({
            "card_id": card_id,
            "serial": view.serial,
            "lifecycle": view.lifecycle,
            "auth_certificate_until": auth.not_after if auth else None,
            "blocked_pins": [f"{p.applet}/{p.name}" for p in view.pins
                             if p.blocked and (p.applet, int(p.ef, 16)) in holder],
            "pending_renewal": bool(view.pending_keys or view.pending_certificates),
        })
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no cards in {store.directory}")
        return EXIT_OK
    print(f"{'ID':20} {'SERIAL':16} {'LIFECYCLE':13} {'AUTH CERT UNTIL':26} NOTES")
    for row in rows:
        if "error" in row:
            print(f"{row['card_id']:20} unreadable: {row['error']}")
            continue
        notes = []
        if row["blocked_pins"]:
            notes.append("blocked: " + ", ".join(row["blocked_pins"]))
        if row["pending_renewal"]:
            notes.append("renewal pending")
        until = row["auth_certificate_until"] or "-"
        print(f"{row['card_id']:20} {row['serial']:16} {row['lifecycle']:13} {until:26} {'; '.join(notes)}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from jpki_remote.card.report import describe, render

    store = open_store(args)
    check_known(store, args.card_id)
    view = describe(store.load(args.card_id))
    if args.json:
        print(json.dumps(view.to_json(), ensure_ascii=False, indent=2))
    else:
        print(render(view))
    return EXIT_OK


# ---- insert --------------------------------------------------------------------------------------------------------

def cmd_insert(args: argparse.Namespace) -> int:
    from jpki_remote.card.transports.vpcd import VpcdCardServer

    if not 0 < args.port < 65536:
        raise CommandError(f"--port must be 1–65535, got {args.port}", EXIT_USAGE)
    store = open_store(args)
    check_known(store, args.card_id)
    with card_in_use(store, args.card_id):
        card = store.open(args.card_id)

        def announce(connected: bool) -> None:
            if connected:
                print(f"card {args.card_id}: in the reader; PC/SC programs can use it now", flush=True)
            elif not stop.is_set():
                print(f"card {args.card_id}: vpcd went away; waiting for it to come back", flush=True)

        stop = threading.Event()
        server = VpcdCardServer(card, host=args.host, port=args.port, on_connection=announce)
        previous = {sig: signal.signal(sig, lambda _signo, _frame: stop.set()) for sig in (signal.SIGINT,
                                                                                          signal.SIGTERM)}
        print(f"card {args.card_id}: inserting into vpcd at {args.host}:{args.port} (Ctrl-C to remove)", flush=True)
        server.start()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            server.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        print(f"card {args.card_id}: removed ({server.commands} commands answered)", flush=True)
    return EXIT_OK


# ---- apdu ----------------------------------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s:]+")


def parse_hex_apdu(text: str, index: int) -> bytes:
    cleaned = _SEPARATORS.sub("", text)
    if not cleaned:
        raise CommandError(f"APDU {index} is empty", EXIT_USAGE)
    if len(cleaned) % 2:
        raise CommandError(f"APDU {index} ({text!r}) has an odd number of hex digits", EXIT_USAGE)
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise CommandError(f"APDU {index} ({text!r}) is not hexadecimal", EXIT_USAGE) from None
    from jpki_remote.card.transports.base import MAX_APDU_LENGTH

    if len(data) > MAX_APDU_LENGTH:
        raise CommandError(f"APDU {index} is {len(data)} bytes; at most {MAX_APDU_LENGTH}", EXIT_USAGE)
    return data


def format_response(response: bytes) -> str:
    from jpki_remote.card.transports.status_words import describe_sw

    if len(response) < 2:
        return f"< {response.hex().upper()}  (no status word)"
    body, sw = response[:-2], int.from_bytes(response[-2:], "big")
    shown = f"{body.hex().upper()} " if body else ""
    return f"< {shown}{sw:04X}  {describe_sw(sw)}" + (f"  [{len(body)} bytes]" if len(body) > 16 else "")


def cmd_apdu(args: argparse.Namespace) -> int:
    from jpki_remote.card.transports.base import CardTransport

    positionals = list(args.args)
    if args.reader is None and len(positionals) < 2:
        raise CommandError("usage: card apdu ID HEX… (or --reader NAME HEX…)", EXIT_USAGE)
    texts = positionals if args.reader is not None else positionals[1:]
    apdus = [parse_hex_apdu(text, i) for i, text in enumerate(texts, 1)]

    def run(transport: CardTransport) -> None:
        print(f"ATR {transport.atr.hex().upper()}")
        for apdu in apdus:
            print(f"> {apdu.hex().upper()}")
            print(format_response(transport.transmit(apdu)), flush=True)

    if args.reader is not None:
        from jpki_remote.card.transports.pcsc import PcscTransport

        with PcscTransport(args.reader) as transport:
            print(f"reader {transport.reader}")
            run(transport)
        return EXIT_OK

    from jpki_remote.card.transports.inprocess import InProcessTransport

    store = open_store(args)
    card_id = positionals[0]
    check_known(store, card_id)
    with card_in_use(store, card_id), InProcessTransport(store.open(card_id)) as transport:
        run(transport)
    return EXIT_OK


# ---- readers -------------------------------------------------------------------------------------------------------

def cmd_readers(args: argparse.Namespace) -> int:
    from jpki_remote.card.transports.pcsc import list_readers

    readers = list_readers()
    if not readers:
        print("no PC/SC readers")
        return EXIT_OK
    for reader in readers:
        card = f"card {reader.atr.hex().upper()}" if reader.card_present else "empty"
        print(f"{reader.name:40} {card}")
    return EXIT_OK
