"""``jpki-remote demo``: set up (or reuse) the demo data directory, start the server, the status service and the
three terminal agents with their virtual readers, print where to go and the demo credentials, run until stopped.
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from jpki_remote.config import Settings
from jpki_remote.demo import residents as people
from jpki_remote.demo.provision import DemoEnvironment, manifest_path, provision
from jpki_remote.demo.residents import DEMO_PINS, PIN_LABELS, Situation

SITUATION_TEXT = {
    Situation.NEAR_EXPIRY: ("証明書の期限が近い (更新できます)", "certificates expire soon: renew"),
    Situation.EXPIRED: ("証明書の期限切れ・カードは有効 (更新できます)", "certificates expired, card valid: renew"),
    Situation.VALID: ("証明書は有効", "certificates valid"),
    Situation.MINOR: ("15歳未満 (署名用電子証明書なし)", "under 15: no signature certificate"),
}


class DemoError(RuntimeError):
    """A user-facing problem (port in use, a data directory that is not the demo's, no faces folder)."""


def prepare_data_dir(data_dir: Path, fresh: bool) -> None:
    """The demo only ever works in a demo data directory (or an empty one): it never adds demo residents to, nor
    deletes, a directory some real deployment uses. ``--fresh`` empties a demo data directory first."""
    if not data_dir.exists():
        return
    if any(data_dir.iterdir()) and not manifest_path(data_dir).exists():
        raise DemoError(
            f"{data_dir} is not a demo data directory; the demo neither uses nor deletes it (choose another --data-dir)"
        )
    if fresh:
        shutil.rmtree(data_dir)


def default_data_dir(settings: Settings) -> Path:
    """Beside the configured data directory, never inside it: ``~/.local/share/jpki-remote-demo`` by default."""
    return settings.data_dir.with_name(settings.data_dir.name + "-demo")


def demo_settings(base: Settings, *, data_dir: Path, host: str, port: int) -> Settings:
    """The demo runs on embedded defaults whatever the environment says about production back ends."""
    return base.with_overrides(
        data_dir=data_dir,
        database_url="",
        keystore="file",
        redis_url="",
        delivery="outbox",
        host=host,
        port=port,
        public_base_url=f"http://{host}:{port}",
    )


def pad(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns (full-width characters count two)."""
    import unicodedata

    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(1, width - used)


def residents_table(env: DemoEnvironment) -> list[str]:
    """The demo residents with what a person needs to walk through every procedure (demo credentials only)."""
    lines = []
    header = f"  {pad('住民 resident', 16)}{pad('card id', 14)}{pad('照合番号B', 16)}state / what to try"
    lines.append(header)
    for spec in people.RESIDENTS:
        card = env.manifest.cards.get(spec.key)
        if card is None:
            continue
        ja, en = SITUATION_TEXT[spec.situation]
        lock = ""
        if spec.locked:
            lock = f"; {PIN_LABELS[spec.locked][0]} ロック中 (locked {PIN_LABELS[spec.locked][1]}): 再設定 / reset"
        lines.append(f"  {pad(spec.name, 16)}{pad(card.card_id, 14)}{pad(card.code_b, 16)}{ja} / {en}{lock}")
    return lines


def print_banner(env: DemoEnvironment, server_url: str, screens: dict[str, str], desk_url: str, out: TextIO) -> None:
    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    say()
    say("=" * 100)
    say("jpki-remote デモ / demo — 港区 (13103)")
    say("=" * 100)
    say(f"  操作台 demo desk         {desk_url}/   (カードを入れる・抜く / insert and remove cards)")
    say(f"  キオスク kiosk           {screens['kiosk']}")
    say(f"  オンライン portal        {screens['app']}")
    say(f"  窓口 counter             {screens['counter']}")
    say(
        f"  管理 admin               {server_url}/admin   (statistics {server_url}/admin/stats; token in "
        f"{env.settings.data_dir / 'admin-token'})"
    )
    say(f"  受信箱 demo outbox       {desk_url}/outbox   (セキュリティーコード / security codes)")
    say(f"  OCSP                     {server_url}/ocsp/authentication   {server_url}/ocsp/signature")
    say(
        f"  CRL                      {server_url}/crl/authentication/0.crl … /crl/signature/"
        f"{env.settings.crl_shards - 1}.crl"
    )
    say(f"  API                      {server_url}/api/v1/docs")
    say()
    say("-" * 100)
    say("デモ用の認証情報（架空のデモカード専用・実在の人物やカードとは無関係）")
    say("DEMO CREDENTIALS — virtual demo cards only, published on purpose; no real person or card has them")
    say("-" * 100)
    pins = "  ".join(f"{PIN_LABELS[k][1]} {v}" for k, v in DEMO_PINS.items())
    say(f"  every demo card starts with: {pins}")
    say(f"  窓口職員 counter staff sign-in: {people.DEMO_STAFF_ID} / {people.DEMO_STAFF_PASSWORD}")
    say("  (a PIN you reset or change in the browser is the new one from then on)")
    for line in residents_table(env):
        say(line)
    say(f"  交付待ち waiting for a card: {people.WAITING.name}  resident id {env.manifest.waiting_resident_id}")
    say("  あなた自身のカード / your own card: demo desk → photo → the card centre delivers a card to the counter →")
    say("  counter screen: new issuance (ID of the waiting resident, the card's 照合番号B is on the desk) →")
    say("  then reset its PINs at the kiosk with your own face (renewal opens only 3 months before expiry).")
    say("  紛失届 / loss report, no card on the reader: portal → 「カードを紛失した / I lost my card」 → card id →")
    say("  face → security code → confirm: both certificates revoked (keyCompromise), no more remote procedures.")
    say("  The face is compared with the photo enrolled at issuance: try it with your own card and your own face.")
    say(f"  顔 / faces: the demo residents' faces are the photos in {env.faces};")
    say("  a person in front of their own camera matches only their own card.")
    say("-" * 100)
    say("Ctrl-C で終了 / Ctrl-C to stop")


def run_demo(
    faces: Path,
    *,
    base: Settings,
    data_dir: Path,
    host: str,
    port: int,
    fresh: bool,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    from jpki_remote.demo.delivery import card_data, deliver
    from jpki_remote.demo.desk import DemoDesk, DeskTerminal
    from jpki_remote.demo.server import DemoServer, port_is_free
    from jpki_remote.proofing.delivery.outbox import dev_outbox
    from jpki_remote.terminal.keys import load_or_create_key
    from jpki_remote.terminal.launch import start_agent
    from jpki_remote.terminal.readers import VirtualReader

    stream = out or sys.stdout
    prepare_data_dir(data_dir, fresh)
    if not port_is_free(host, port):
        raise DemoError(f"port {port} on {host} is in use (another `jpki-remote demo` or `serve`?); use --port")
    settings = demo_settings(base, data_dir=data_dir, host=host, port=port)
    print(f"データ / data directory: {data_dir}", file=stream, flush=True)
    env = provision(settings, faces, progress=lambda m: print(f"  {m}", file=stream, flush=True))
    created, reused = len(env.created), len(env.reused)
    print(f"  住民 residents: {created} created, {reused} reused", file=stream, flush=True)
    stopping = stop or threading.Event()
    server = DemoServer(settings, env.db, host=host, port=port)
    agents: list[object] = []
    desk: DemoDesk | None = None
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: stopping.set())
    try:
        url = server.start()

        def cards() -> list[tuple[str, str]]:
            listed = []
            for spec in people.RESIDENTS:
                card = env.manifest.cards.get(spec.key)
                if card is not None:
                    listed.append((card.card_id, f"{spec.name} — {SITUATION_TEXT[spec.situation][0]}"))
            for path in sorted((data_dir / "demo" / "delivered").glob("*.json")):
                facts = card_data(data_dir, path.stem) or {}
                listed.append((path.stem, f"新しいカード / new card — 照合番号B {facts.get('code_b', '?')}"))
            return listed

        def new_card(photo: bytes) -> str:
            waiting = people.WAITING
            facts = deliver(
                data_dir,
                env.master_key,
                photo,
                name=waiting.name,
                address=waiting.address,
                birth_date=waiting.birth_date,
                sex=waiting.sex,
                kana=waiting.kana,
            )
            return facts["card_id"]

        terminals = []
        for kind in ("kiosk", "app", "counter"):
            known = env.manifest.terminals[kind]
            reader = VirtualReader(env.cards_dir)
            running = start_agent(
                server_url=url,
                terminal_id=known.terminal_id,
                key=load_or_create_key(Path(known.key_file)),
                reader=reader,
                listen="127.0.0.1:0",
            )
            agents.append(running)
            terminals.append(DeskTerminal(kind, known.name, running.launcher_url, reader))
        desk = DemoDesk(terminals, cards, lambda: list(dev_outbox(env.db, limit=30)), new_card)
        desk_url = desk.start()
        print_banner(env, url, {t.kind: t.screen_url for t in terminals}, desk_url, stream)
        stopping.wait()
        print("\n停止しています / stopping …", file=stream, flush=True)
    finally:
        if desk is not None:
            desk.stop()
        for agent in agents:
            agent.stop()  # type: ignore[attr-defined]
        server.stop()
        env.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("停止しました / stopped", file=stream, flush=True)
    return 0
