"""`jpki-remote terminal …` and `jpki-remote staff …`: terminals, the terminal agent, counter staff accounts.

terminal register --kind kiosk|app|counter --name NAME --key-file PATH [--municipality CODE]
terminal list
staff add NAME [--display-name TEXT] [--municipality CODE] [--password-stdin] | passwd NAME | disable NAME | list
terminal agent --key-file PATH [--terminal-id ID] --server URL [--card ID] [--cards-dir DIR | --reader NAME]
               [--listen 127.0.0.1:8765] [--origin URL]... [--open] [--console]

The agent serves its page on the loopback (``--listen``) and prints the page's URL; without ``--card`` or
``--reader`` it is a virtual reader over the card directory, cards put on it by ``POST /v1/card``. ``--console``
is the old mode: PINs typed on this console, the procedure picked up from the server. Both modes retry a server
that is briefly away for ``JPKI_TERMINAL_RETRY_SECONDS`` (:mod:`jpki_remote.terminal.retry`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add this package's sub-commands to ``subparsers`` and its benchmarks to ``bench``."""
    del bench
    parser = subparsers.add_parser("terminal", help="register terminals and run the terminal agent")
    sub = parser.add_subparsers(dest="terminal_command", metavar="ACTION")
    parser.set_defaults(handler=lambda _a: parser.print_help() or 2)

    reg = sub.add_parser("register", help="create the terminal's key pair and register its public key")
    reg.add_argument("--kind", choices=["kiosk", "app", "counter"], required=True)
    reg.add_argument("--name", required=True)
    reg.add_argument("--key-file", type=Path, required=True, help="Ed25519 key of the terminal (created if missing)")
    reg.add_argument("--municipality", help="municipality code (counter terminals)")
    reg.set_defaults(handler=_register)

    lst = sub.add_parser("list", help="list registered terminals")
    lst.set_defaults(handler=_list)

    agent = sub.add_parser("agent", help="run the terminal agent (relays the card reader) until stopped")
    agent.add_argument("--key-file", type=Path, required=True)
    agent.add_argument("--terminal-id", help="default: noted by `terminal register` beside the key file")
    agent.add_argument("--server", required=True, help="base URL of jpki-remote serve, e.g. https://…")
    source = agent.add_mutually_exclusive_group()
    source.add_argument("--card", help="a virtual card put on the virtual reader at start")
    source.add_argument("--reader", help="a PC/SC reader name (or part of it)")
    agent.add_argument(
        "--cards-dir", type=Path, default=None, help="virtual cards directory (default <data_dir>/cards)"
    )
    agent.add_argument("--listen", default="127.0.0.1:8765", help="loopback HOST:PORT of the page's agent API")
    agent.add_argument(
        "--origin", action="append", default=None, help="page origin allowed by CORS (default: the --server's)"
    )
    agent.add_argument("--open", action="store_true", help="open the page in the default browser")
    agent.add_argument("--console", action="store_true", help="PINs on this console instead of the page")
    agent.set_defaults(handler=_agent)
    _register_staff(subparsers)


def _register_staff(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("staff", help="counter staff accounts (sign-in at the counter screen)")
    sub = parser.add_subparsers(dest="staff_command", metavar="ACTION")
    parser.set_defaults(handler=lambda _a: parser.print_help() or 2)
    add = sub.add_parser("add", help="create a staff account; the password is asked twice (or read from stdin)")
    add.add_argument("name", help="the sign-in name (staff id), e.g. tanaka.h")
    add.add_argument("--display-name", help="name shown on the screen (default: the sign-in name)")
    add.add_argument("--municipality", help="municipality code: may sign in only at that municipality's counters")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(handler=_staff_add)
    passwd = sub.add_parser("passwd", help="set a new password (also unlocks the account)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(handler=_staff_passwd)
    disable = sub.add_parser("disable", help="disable an account (its sessions end at their next request)")
    disable.add_argument("name")
    disable.set_defaults(handler=_staff_disable)
    sub.add_parser("list", help="list staff accounts").set_defaults(handler=_staff_list)


def _read_password(from_stdin: bool) -> str | None:
    import getpass
    import sys

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("password again: "):
        print("error: the two passwords differ")
        return None
    return first


def _staff_db() -> object:
    from jpki_remote.config import load_settings
    from jpki_remote.store import Database

    db = Database(load_settings().effective_database_url)
    db.create_schema()
    return db


def _staff_add(args: argparse.Namespace) -> int:
    from jpki_remote.registry.service import normalise_municipality_code
    from jpki_remote.terminal.staff import StaffError, add_staff

    password = _read_password(args.password_stdin)
    if password is None:
        return 1
    try:
        code = normalise_municipality_code(args.municipality) if args.municipality else None
        with _staff_db().session() as session:  # type: ignore[attr-defined]
            member = add_staff(session, args.name, password, display_name=args.display_name, municipality_code=code)
    except (StaffError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    print(f"staff {member.staff_id} added")
    return 0


def _staff_passwd(args: argparse.Namespace) -> int:
    from jpki_remote.terminal.staff import StaffError, set_password

    password = _read_password(args.password_stdin)
    if password is None:
        return 1
    try:
        with _staff_db().session() as session:  # type: ignore[attr-defined]
            set_password(session, args.name, password)
    except StaffError as exc:
        print(f"error: {exc}")
        return 1
    print(f"password of {args.name} set")
    return 0


def _staff_disable(args: argparse.Namespace) -> int:
    from jpki_remote.terminal.staff import StaffError, disable_staff

    try:
        with _staff_db().session() as session:  # type: ignore[attr-defined]
            disable_staff(session, args.name)
    except StaffError as exc:
        print(f"error: {exc}")
        return 1
    print(f"staff {args.name} disabled")
    return 0


def _staff_list(args: argparse.Namespace) -> int:
    del args
    from jpki_remote.terminal.staff import list_staff

    with _staff_db().session() as session:  # type: ignore[attr-defined]
        for row in list_staff(session):
            state = "active" if row.active else "disabled"
            print(f"{row.staff_id}\t{state}\t{row.municipality_code or '-'}\t{row.display_name}")
    return 0


def _register(args: argparse.Namespace) -> int:
    from jpki_remote.config import load_settings
    from jpki_remote.registry.service import normalise_municipality_code
    from jpki_remote.store import Database
    from jpki_remote.terminal.keys import load_or_create_key, public_bytes
    from jpki_remote.terminal.service import TerminalError, register_terminal

    settings = load_settings()
    key = load_or_create_key(args.key_file)
    db = Database(settings.effective_database_url)
    db.create_schema()
    try:
        code = normalise_municipality_code(args.municipality) if args.municipality else None
        with db.session() as session:
            terminal = register_terminal(
                session, kind=args.kind, name=args.name, public_key=public_bytes(key), municipality_code=code
            )
            terminal_id = terminal.id
    except (TerminalError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    from jpki_remote.terminal.launch import terminal_id_file

    terminal_id_file(args.key_file).write_text(terminal_id + "\n")
    print(terminal_id)
    return 0


def _list(args: argparse.Namespace) -> int:
    del args
    from jpki_remote.config import load_settings
    from jpki_remote.store import Database
    from jpki_remote.terminal.service import list_terminals

    db = Database(load_settings().effective_database_url)
    with db.session() as session:
        for t in list_terminals(session):
            print(f"{t.id}\t{t.kind.value}\t{t.status.value}\t{t.municipality_code or '-'}\t{t.name}")
    return 0


def _agent(args: argparse.Namespace) -> int:
    import signal
    import threading

    import httpx

    from jpki_remote.config import load_settings
    from jpki_remote.terminal.client import ServerError
    from jpki_remote.terminal.keys import load_or_create_key
    from jpki_remote.terminal.launch import terminal_id_file

    if not args.key_file.exists():
        print(f"error: no key file {args.key_file}; register the terminal first")
        return 1
    terminal_id = args.terminal_id
    if terminal_id is None and terminal_id_file(args.key_file).exists():
        terminal_id = terminal_id_file(args.key_file).read_text().strip()
    if not terminal_id:
        print("error: --terminal-id is needed (no id noted beside the key file)")
        return 1
    key = load_or_create_key(args.key_file)
    cards_dir = args.cards_dir or load_settings().data_dir / "cards"
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if args.console:
            return _console_agent(args, terminal_id, key, cards_dir, stop)
        return _page_agent(args, terminal_id, key, cards_dir, stop)
    except ServerError as exc:
        if exc.status >= 500:  # still unavailable when the retry budget was spent (JPKI_TERMINAL_RETRY_SECONDS)
            print(f"error: the server is unavailable: {exc}")
        else:
            print(f"error: the server refused the terminal: {exc}")
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the server {args.server}: {type(exc).__name__}")
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}")
    return 1


def _page_agent(args: argparse.Namespace, terminal_id: str, key: object, cards_dir: Path, stop: object) -> int:
    import webbrowser

    from jpki_remote.config import load_settings
    from jpki_remote.terminal.launch import start_agent
    from jpki_remote.terminal.local_api import origin_of
    from jpki_remote.terminal.readers import PcscReader, VirtualReader

    reader = PcscReader(args.reader) if args.reader else VirtualReader(cards_dir)
    if args.card:
        reader.insert(args.card)  # type: ignore[union-attr]
    origins = {origin_of(o) for o in args.origin} if args.origin else None
    agent = start_agent(
        server_url=args.server,
        terminal_id=terminal_id,
        key=key,
        reader=reader,
        listen=args.listen,
        origins=origins,
        retry_seconds=load_settings().terminal_retry_seconds,  # JPKI_TERMINAL_RETRY_SECONDS
    )
    try:
        url = agent.page_url(agent.service.browser_link())
        print(f"terminal {terminal_id} ({agent.service.identity.kind}), reader: {reader.name}")
        print(f"agent API: {agent.base_url} (a fresh page link any time: {agent.launcher_url})")
        print(f"page: {url}", flush=True)
        if args.open:
            webbrowser.open(url)
        stop.wait()  # type: ignore[attr-defined]
    finally:
        agent.stop()
    return 0


def _console_agent(args: argparse.Namespace, terminal_id: str, key: object, cards_dir: Path, stop: object) -> int:
    from jpki_remote.config import load_settings
    from jpki_remote.terminal.agent import ConsolePinPad, run_loop
    from jpki_remote.terminal.client import ServerClient
    from jpki_remote.terminal.retry import RetryBudget

    if args.reader:
        from jpki_remote.card.transports.pcsc import PcscTransport

        transport = PcscTransport(args.reader)
    elif args.card:
        from jpki_remote.card.store import CardStore
        from jpki_remote.card.transports.inprocess import InProcessTransport

        transport = InProcessTransport(CardStore(cards_dir).open(args.card))
    else:
        print("error: --console needs --card or --reader")
        return 1
    client = ServerClient(args.server, terminal_id, key)  # type: ignore[arg-type]
    try:
        client.authenticate()
        print(f"browser link: {args.server.rstrip('/')}/?link={client.browser_link()}")
        budget = RetryBudget(load_settings().terminal_retry_seconds)  # JPKI_TERMINAL_RETRY_SECONDS, like the relay
        run_loop(client, transport.transmit, ConsolePinPad(), stop=stop, retry=budget)
    finally:
        transport.close()
        client.close()
    return 0
