"""`jpki-remote terminal …`: register a terminal, run the terminal agent.

terminal register --kind kiosk|app|counter --name NAME --key-file PATH [--municipality CODE]
terminal list
terminal agent --terminal-id ID --key-file PATH --server URL (--card ID [--cards-dir DIR] | --reader NAME)
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
    agent.add_argument("--terminal-id", required=True)
    agent.add_argument("--key-file", type=Path, required=True)
    agent.add_argument("--server", required=True, help="base URL of jpki-remote serve, e.g. https://…")
    source = agent.add_mutually_exclusive_group(required=True)
    source.add_argument("--card", help="a virtual card id (in-process)")
    source.add_argument("--reader", help="a PC/SC reader name (or part of it)")
    agent.add_argument(
        "--cards-dir", type=Path, default=None, help="virtual cards directory (default <data_dir>/cards)"
    )
    agent.set_defaults(handler=_agent)


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

    from jpki_remote.config import load_settings
    from jpki_remote.terminal.agent import ConsolePinPad, run_loop
    from jpki_remote.terminal.client import ServerClient
    from jpki_remote.terminal.keys import load_or_create_key

    if not args.key_file.exists():
        print(f"error: no key file {args.key_file}; register the terminal first")
        return 1
    key = load_or_create_key(args.key_file)
    if args.card:
        from jpki_remote.card.store import CardStore
        from jpki_remote.card.transports.inprocess import InProcessTransport

        cards_dir = args.cards_dir or load_settings().data_dir / "cards"
        transport = InProcessTransport(CardStore(cards_dir).open(args.card))
    else:
        from jpki_remote.card.transports.pcsc import PcscTransport

        transport = PcscTransport(args.reader)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client = ServerClient(args.server, args.terminal_id, key)
    try:
        client.authenticate()
        print(f"browser link: {args.server.rstrip('/')}/?link={client.browser_link()}")
        run_loop(client, transport.transmit, ConsolePinPad(), stop=stop)
    finally:
        transport.close()
        client.close()
    return 0
