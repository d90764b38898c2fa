"""The demo's terminal agents: one per demo terminal, in this process, each with a virtual-card reader.

Each agent authenticates as its registered terminal, relays the card for the procedure its page started (the real
:func:`jpki_remote.terminal.agent.drive` loop), and serves the page ↔ agent contract of ``web/pages/static/js/agent.js``
on its own loopback port (CORS for the server's origin only)::

    GET  /v1/status                      terminal, reader, card, procedure, pending PIN request
    POST /v1/procedures/{id}/drive       relay this procedure's card exchanges until it ends
    POST /v1/pin {kind, value, new}      the PIN the holder typed on the page (kept in memory until the card has it)
    POST /v1/cancel                      drop the pending request and stop relaying

and, for the person at the demo, the reader itself (these pages exist only because the card is virtual)::

    GET  /                               the reader: which demo card is in it; insert / remove
    POST /reader/insert, /reader/remove  put a card from <data_dir>/cards into the reader, take it out
    POST /reader/new-card                the card centre delivers a new card with your photo (counter issuance)
    GET  /open                           a fresh one-time browser link → the terminal's page (kiosk/portal/counter)
    GET  /outbox                         the development outbox: the security codes and notices "sent" (demo only)

Nothing here holds an issuer key, a CA key or a PIN beyond the one exchange that needs it.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jpki_remote.demo.provision import DemoTerminal
from jpki_remote.terminal.agent import AgentCore, AgentError, drive

log = logging.getLogger(__name__)
PAGES = {"kiosk": "/kiosk", "app": "/portal", "counter": "/counter"}
READER_NAME = "デモ仮想カードリーダー (virtual)"
PIN_WAIT_SECONDS = 180
POLL_SECONDS = 0.7
MAX_BODY = 6_000_000
_PIN_KINDS = {"auth_pin", "sign_password", "residence_pin", "text_pin", "code_b"}


class VirtualReader:
    """A reader slot holding at most one card of the card store; ``transmit`` is the agent's."""

    def __init__(self, cards_dir: Path) -> None:
        self.cards_dir = cards_dir
        self._lock = threading.RLock()
        self._transport: Any = None
        self.card_id: str | None = None
        self.generation = 0  # bumped on every insert/remove: the agent notices a card change

    def insert(self, card_id: str) -> None:
        from jpki_remote.card.store import CardStore
        from jpki_remote.card.transports.inprocess import InProcessTransport

        store = CardStore(self.cards_dir)
        if not store.exists(card_id):
            raise KeyError(card_id)
        with self._lock:
            self.remove()
            self._transport = InProcessTransport(store.open(card_id))
            self.card_id = card_id
            self.generation += 1

    def remove(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
            self._transport, self.card_id = None, None
            self.generation += 1

    def transmit(self, apdu: bytes) -> bytes:
        from jpki_remote.card.transports.base import NoCardError

        with self._lock:
            if self._transport is None:
                raise NoCardError("no card in the reader")
            return self._transport.transmit(apdu)

    def card_data(self) -> dict[str, str] | None:
        """What the counter needs about a newly delivered card (no JPKI keys yet): its key diversification data,
        the card key and the expiry printed on it. None for the demo residents' cards (already issued)."""
        from jpki_remote.demo.delivery import card_data

        card_id = self.card_id
        facts = card_data(self.cards_dir.parent, card_id) if card_id else None
        if facts is None:
            return None
        return {k: facts[k] for k in ("diversification_data", "public_key", "expiry")}


class PagePinPad:
    """The PIN pad is the page: a request is published in ``/v1/status``, the page posts the value to ``/v1/pin``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.request: dict[str, Any] | None = None
        self._value: str | None = None
        self._cancelled = False
        self._attempt = 0

    def _ask(self, kind: str, new: bool) -> str | None:
        with self._cond:
            self._attempt += 1
            self.request = {"kind": kind, "new": new, "attempt": self._attempt}
            self._value, self._cancelled = None, False
            deadline = time.monotonic() + PIN_WAIT_SECONDS
            while self._value is None and not self._cancelled and time.monotonic() < deadline:
                self._cond.wait(timeout=1.0)
            value, self._value, self.request = self._value, None, None
            return value

    def pin(self, kind: str) -> str | None:
        return self._ask(kind, False)

    def new_pin(self, kind: str) -> str | None:
        return self._ask(kind, True)

    def retry(self, message: dict[str, Any] | None) -> bool:
        return True  # the page asks again (showing the refusal); the holder may cancel instead

    def answer(self, kind: str, value: str, new: bool) -> bool:
        with self._cond:
            if self.request is None or self.request["kind"] != kind or bool(self.request["new"]) != new:
                return False
            self._value = value
            self._cond.notify_all()
            return True

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._value = None
            self._cond.notify_all()


class DemoAgent:
    """One terminal's agent: server session, reader, PIN pad, the relay thread and the loopback HTTP face."""

    def __init__(
        self,
        server_url: str,
        terminal: DemoTerminal,
        cards_dir: Path,
        card_labels: Callable[[], list[tuple[str, str]]],
        new_card: Callable[[bytes], str] | None = None,
        outbox: Callable[[], list[Any]] | None = None,
    ) -> None:
        from jpki_remote.terminal.client import ServerClient
        from jpki_remote.terminal.keys import load_or_create_key

        self.server_url = server_url.rstrip("/")
        self.terminal = terminal
        self.reader = VirtualReader(cards_dir)
        self.pinpad = PagePinPad()
        self.client = ServerClient(server_url, terminal.terminal_id, load_or_create_key(Path(terminal.key_file)))
        self.card_labels = card_labels
        self.new_card = new_card
        self.outbox = outbox
        self.procedure_id: str | None = None
        self._relay: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.client.authenticate()
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, name=f"agent-{self.terminal.kind}", daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def page_url(self) -> str:
        return f"{self.url}/open"

    def stop(self) -> None:
        self._stop.set()
        self.pinpad.cancel()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        if self._relay is not None:
            self._relay.join(timeout=10)
        self.reader.remove()
        self.client.close()

    # ---- the page's requests ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "terminal_id": self.terminal.terminal_id,
            "terminal_kind": self.terminal.kind,
            "terminal_name": self.terminal.name,
            "reader": READER_NAME,
            "card_present": self.reader.card_id is not None,
            "card_id": self.reader.card_id,
            "procedure_id": self.procedure_id,
            "pin_request": self.pinpad.request,
            "card": self.reader.card_data(),
        }

    def drive(self, procedure_id: str) -> None:
        with self._lock:
            if self._relay is not None and self._relay.is_alive():
                if self.procedure_id == procedure_id:
                    return
                self.pinpad.cancel()
                self._relay.join(timeout=5)
            self.procedure_id = procedure_id
            self._relay = threading.Thread(target=self._run, args=(procedure_id,), name="agent-relay", daemon=True)
            self._relay.start()

    def cancel(self) -> None:
        self.pinpad.cancel()
        self.procedure_id = None

    def browser_link(self) -> str:
        return self.client.browser_link()

    # ---- the relay -------------------------------------------------------------------------------------------------
    def _run(self, procedure_id: str) -> None:
        from jpki_remote.card.transports.base import CardRemovedError, NoCardError, TransportError
        from jpki_remote.terminal.client import ServerError

        core = AgentCore(self.reader.transmit, self.pinpad)
        body: dict[str, Any] = {"seq": None, "responses": []}
        seen = self.reader.generation
        while not self._stop.is_set() and self.procedure_id == procedure_id:
            try:
                reply = self.client.exchange(procedure_id, body)
                body = {"seq": None, "responses": []}
                reply = drive(lambda b: self.client.exchange(procedure_id, b), core, reply)
                status = reply["exchange"]["status"]
                if status in ("done", "failed"):
                    break
                if status == "insert_card" and self.reader.card_id is not None and self.reader.generation != seen:
                    seen = self.reader.generation
                    body = {"seq": None, "responses": [], "event": "card_inserted"}
                    continue
            except (NoCardError, CardRemovedError):
                body = {"seq": None, "responses": [], "event": "card_removed"}
                seen = self.reader.generation
            except AgentError as exc:  # the holder cancelled, or the server asked for something refused
                log.info("agent %s: %s", self.terminal.kind, exc)
                break
            except (ServerError, TransportError, OSError) as exc:
                log.warning("agent %s: %s", self.terminal.kind, exc)
                if getattr(exc, "status", 0) in (404, 409, 422):
                    break
            self._stop.wait(POLL_SECONDS)
        if self.procedure_id == procedure_id:
            self.procedure_id = None


# ---------------------------------------------------------------------------------------------------- HTTP face
def _handler(agent: DemoAgent) -> type[BaseHTTPRequestHandler]:
    origin = agent.server_url
    drive_path = re.compile(r"^/v1/procedures/([0-9a-f]{1,32})/drive$")

    class Handler(BaseHTTPRequestHandler):
        server_version = "jpki-remote-demo-agent"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("agent %s: " + format, agent.terminal.kind, *args)

        # -- helpers
        def _cors(self) -> None:
            if self.headers.get("Origin") == origin:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Vary", "Origin")

        def _send(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
            self.send_response(status)
            self._cors()
            self.send_header("Cache-Control", "no-store")
            if body:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value, ensure_ascii=False).encode())

        def _redirect(self, location: str) -> None:
            self.send_response(303)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _body(self) -> bytes:
            length = self.headers.get("Content-Length", "0")
            if not length.isdigit() or int(length) > MAX_BODY:
                raise ValueError("body too large")
            return self.rfile.read(int(length))

        def _from_page(self) -> bool:
            """Requests from a browser must come from the server's page (a foreign site cannot drive the reader)."""
            sent = self.headers.get("Origin")
            return sent is None or sent == origin

        # -- verbs
        def do_OPTIONS(self) -> None:
            self.send_response(204)
            self._cors()
            self.send_header("Access-Control-Allow-Methods", "GET, POST")
            self.send_header("Access-Control-Allow-Headers", "Content-Type, Accept")
            self.send_header("Access-Control-Max-Age", "600")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/v1/status":
                self._json(200, agent.status())
            elif path == "/open":
                try:
                    code = agent.browser_link()
                except Exception as exc:
                    self._send(502, f"the server refused a browser link: {exc}".encode(), "text/plain; charset=utf-8")
                    return
                page = PAGES.get(agent.terminal.kind, "/kiosk")
                self._redirect(f"{agent.server_url}{page}?agent={agent.url}#link={code}")
            elif path == "/":
                self._send(200, _reader_page(agent).encode(), "text/html; charset=utf-8")
            elif path == "/outbox" and agent.outbox is not None:
                self._send(200, _outbox_page(agent.outbox()).encode(), "text/html; charset=utf-8")
            else:
                self._send(404)

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if not self._from_page():
                self._send(403)
                return
            try:
                raw = self._body()
            except ValueError:
                self._send(413)
                return
            match = drive_path.match(path)
            if match:
                agent.drive(match.group(1))
                self._send(202)
            elif path == "/v1/pin":
                self._pin(raw)
            elif path == "/v1/cancel":
                agent.cancel()
                self._send(204)
            elif path.startswith("/reader/"):
                self._reader(path, raw)
            else:
                self._send(404)

        def _pin(self, raw: bytes) -> None:
            try:
                body = json.loads(raw or b"{}")
                kind, value, new = str(body["kind"]), str(body["value"]), bool(body.get("new"))
            except (ValueError, KeyError, TypeError):
                self._send(422)
                return
            if kind not in _PIN_KINDS or not 4 <= len(value) <= 16:
                self._send(422)
                return
            self._send(204 if agent.pinpad.answer(kind, value, new) else 409)

        def _reader(self, path: str, raw: bytes) -> None:
            fields = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=10)
            if path == "/reader/insert":
                try:
                    agent.reader.insert(fields.get("card_id", [""])[0])
                except (KeyError, ValueError):
                    self._send(404, b"no such card", "text/plain; charset=utf-8")
                    return
            elif path == "/reader/remove":
                agent.reader.remove()
            elif path == "/reader/new-card" and agent.new_card is not None:
                photo = _data_url_bytes(fields.get("photo", [""])[0])
                if photo is None:
                    self._send(422, "写真がありません / no photo".encode(), "text/plain; charset=utf-8")
                    return
                try:
                    agent.reader.insert(agent.new_card(photo))
                except Exception as exc:
                    self._send(422, f"カードを作れませんでした / {exc}".encode(), "text/plain; charset=utf-8")
                    return
            else:
                self._send(404)
                return
            self._redirect("/")

    return Handler


def _data_url_bytes(value: str) -> bytes | None:
    import base64
    import binascii

    if not value:
        return None
    try:
        data = base64.b64decode(value.split(",", 1)[-1], validate=False)
    except (binascii.Error, ValueError):
        return None
    return data or None


def _reader_page(agent: DemoAgent) -> str:
    """The virtual reader's own page: put a demo card in, take it out (and, at the counter, order a new card)."""
    e = html.escape
    rows = []
    for card_id, label in agent.card_labels():
        current = card_id == agent.reader.card_id
        button = (
            "<em>挿入中 / in the reader</em>"
            if current
            else '<form method="post" action="/reader/insert">'
            f'<input type="hidden" name="card_id" value="{e(card_id)}">'
            '<button type="submit">入れる / insert</button></form>'
        )
        rows.append(f"<tr><td><code>{e(card_id)}</code></td><td>{e(label)}</td><td>{button}</td></tr>")
    new_card = ""
    if agent.new_card is not None:
        new_card = _NEW_CARD_FORM
    inside = e(agent.reader.card_id or "なし / none")
    return _READER_TEMPLATE.format(
        title=e(agent.terminal.name),
        page=e(agent.page_url),
        inside=inside,
        rows="\n".join(rows),
        new_card=new_card,
    )


def _outbox_page(entries: list[Any]) -> str:
    """The messages the development outbox holds, newest first: what the holder's phone / mailbox would show."""
    e = html.escape
    rows = "\n".join(
        f"<tr><td>{e(m.created_at.strftime('%H:%M:%S'))}</td><td>{e(m.channel)}</td><td><code>{e(m.address)}</code></td>"
        f"<td><strong>{e(m.subject)}</strong><pre>{e(m.body)}</pre></td></tr>"
        for m in entries
    )
    return _OUTBOX_TEMPLATE.format(rows=rows or '<tr><td colspan="4">まだありません / nothing yet</td></tr>')


_OUTBOX_TEMPLATE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>デモ受信箱 / demo outbox</title>
<style>body{{font-family:"Noto Sans CJK JP",sans-serif;margin:2rem}}
td{{border-bottom:1px solid #ccc;padding:.4rem;vertical-align:top}}pre{{white-space:pre-wrap;margin:.3rem 0}}
.demo{{background:#fff3cd;padding:.5rem 1rem}}</style></head>
<body><p class="demo">開発用アウトボックス（デモ専用）: 登録連絡先に「送った」セキュリティーコードと通知。
本番では SMS・メールで届きます。<br>
DEVELOPMENT OUTBOX (demo only): the codes and notices "sent" to registered contacts; production sends SMS / e-mail.</p>
<table><thead><tr><th>時刻 time</th><th>種別</th><th>宛先 to</th><th>内容 message</th></tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""


_READER_TEMPLATE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>{title} — カードリーダー</title>
<style>body{{font-family:"Noto Sans CJK JP",sans-serif;margin:2rem;max-width:60rem}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ccc;padding:.4rem .8rem;text-align:left}}button{{font-size:1rem;padding:.3rem .8rem}}
.demo{{background:#fff3cd;padding:.5rem 1rem;border:1px solid #e0c060}}</style></head>
<body><p class="demo">デモ用の仮想カードリーダーです（実物のカードの代わり）。 Demo: a virtual card reader.</p>
<h1>{title}</h1>
<p>画面 / screen: <a href="{page}" target="_blank" rel="noopener">{page}</a></p>
<p>リーダーのカード / card in the reader: <strong>{inside}</strong></p>
<form method="post" action="/reader/remove"><button type="submit">カードを抜く / remove the card</button></form>
<h2>デモのカード / demo cards</h2>
<table><thead><tr><th>card id</th><th>住民 / resident</th><th></th></tr></thead><tbody>
{rows}
</tbody></table>
{new_card}
</body></html>
"""

_NEW_CARD_FORM = """<h2>あなた自身のカード / your own card</h2>
<p>カメラで顔写真を撮ると、カード作成機関がその写真入りの新しいカード（電子証明書なし）を届けます。窓口画面の「新規交付」で
交付し（住民ID は表示されたデモ用の交付待ち住民）、その後キオスクで暗証番号の再設定ができます。<br>
Take a photo: the card centre delivers a new card with it (no certificates yet). Issue it on the counter screen
(new issuance, the waiting demo resident), then reset its PINs at the kiosk.</p>
<video id="v" autoplay playsinline width="320" height="240"></video>
<canvas id="c" width="640" height="480" hidden></canvas>
<form method="post" action="/reader/new-card" id="f"><input type="hidden" name="photo" id="p">
<button type="button" id="cam">カメラを使う / camera</button>
<button type="button" id="snap">撮影してカードを作る / take the photo and make the card</button></form>
<p><label>または写真ファイル / or a photo file: <input type="file" id="file" accept="image/*"></label></p>
<script>
const $ = (id) => document.getElementById(id);
const v = $("v"), c = $("c"), p = $("p"), f = $("f");
$("cam").onclick = async () => {
  v.srcObject = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}});
};
$("snap").onclick = () => {
  if (!v.srcObject) return;
  c.getContext("2d").drawImage(v, 0, 0, 640, 480);
  p.value = c.toDataURL("image/jpeg", 0.92);
  v.srcObject.getTracks().forEach((t) => t.stop());
  f.submit();
};
$("file").onchange = (e) => {
  const r = new FileReader();
  r.onload = () => { p.value = r.result; f.submit(); };
  r.readAsDataURL(e.target.files[0]);
};
</script>
"""
