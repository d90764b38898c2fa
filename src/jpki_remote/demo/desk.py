"""The demo desk: what stands in for the physical world around the three demo terminals.

The terminals themselves are the terminal package's agents (:func:`jpki_remote.terminal.launch.start_agent`, each
with a :class:`~jpki_remote.terminal.readers.VirtualReader`), serving the page ↔ agent contract on their own
loopback ports. This page (one loopback port) is the person's hands and phone:

    GET  /            the three terminals: their screens, which card is in each reader; put a demo card in, take
                      it out; at the counter, have the card centre deliver a new card with your photo
    GET  /outbox      the development outbox: the security codes and notices "sent" to registered contacts
    POST /insert      {terminal, card_id}      POST /remove {terminal}      POST /new-card {photo (data URL)}

Form posts are accepted only from this page itself (``Origin``), so another site cannot push cards around.
"""

from __future__ import annotations

import base64
import binascii
import html
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)
MAX_BODY = 8_000_000
LABELS = {"kiosk": "キオスク / kiosk", "app": "オンライン / portal (holder's PC)", "counter": "窓口 / counter"}


@dataclass
class DeskTerminal:
    kind: str
    name: str
    screen_url: str  # the agent's launcher: a fresh browser link, then the terminal's page
    reader: Any  # jpki_remote.terminal.readers.VirtualReader


class DemoDesk:
    def __init__(
        self,
        terminals: list[DeskTerminal],
        cards: Callable[[], list[tuple[str, str]]],
        outbox: Callable[[], list[Any]],
        new_card: Callable[[bytes], str] | None,
    ) -> None:
        self.terminals = {t.kind: t for t in terminals}
        self.cards = cards
        self.outbox = outbox
        self.new_card = new_card
        self.httpd: ThreadingHTTPServer | None = None
        self.notice = ""

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, name="demo-desk", daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


def _data_url_bytes(value: str) -> bytes | None:
    if not value:
        return None
    try:
        data = base64.b64decode(value.split(",", 1)[-1], validate=False)
    except (binascii.Error, ValueError):
        return None
    return data or None


def _handler(desk: DemoDesk) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "jpki-remote-demo-desk"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("desk: " + format, *args)

        def _send(self, status: int, body: str = "", content_type: str = "text/html; charset=utf-8") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/":
                self._send(200, _desk_page(desk))
                desk.notice = ""
            elif path == "/outbox":
                self._send(200, _outbox_page(desk.outbox()))
            else:
                self._send(404, "not found", "text/plain; charset=utf-8")

        def do_POST(self) -> None:
            sent = self.headers.get("Origin")
            if sent is not None and sent != desk.url:
                self._send(403, "forbidden", "text/plain; charset=utf-8")
                return
            length = self.headers.get("Content-Length", "0")
            if not length.isdigit() or int(length) > MAX_BODY:
                self._send(413, "too large", "text/plain; charset=utf-8")
                return
            fields = parse_qs(self.rfile.read(int(length)).decode("utf-8", "replace"), max_num_fields=10)
            value = lambda name: fields.get(name, [""])[0]  # noqa: E731
            path = urlsplit(self.path).path
            terminal = desk.terminals.get(value("terminal"))
            try:
                if path == "/insert" and terminal is not None:
                    terminal.reader.insert(value("card_id"))
                elif path == "/remove" and terminal is not None:
                    terminal.reader.remove()
                elif path == "/new-card" and desk.new_card is not None:
                    photo = _data_url_bytes(value("photo"))
                    if photo is None:
                        raise ValueError("写真がありません / no photo")
                    card_id = desk.new_card(photo)
                    desk.terminals["counter"].reader.insert(card_id)
                    desk.notice = (
                        f"新しいカード {card_id} を窓口のリーダーに置きました / new card {card_id} is on the counter"
                    )
                else:
                    self._send(404, "not found", "text/plain; charset=utf-8")
                    return
            except KeyError:
                desk.notice = "そのカードはありません / no such card"
            except Exception as exc:  # a photo without one clear face, …: shown on the page, nothing changed
                desk.notice = f"できませんでした / failed: {exc}"
            self.send_response(303)
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def _desk_page(desk: DemoDesk) -> str:
    e = html.escape
    cards = desk.cards()
    sections = []
    for kind, terminal in desk.terminals.items():
        inside = terminal.reader.card_id()
        options = "".join(
            f'<option value="{e(cid)}"{" selected" if cid == inside else ""}>{e(cid)} — {e(label)}</option>'
            for cid, label in cards
        )
        sections.append(
            f"<section><h2>{e(LABELS.get(kind, kind))}: {e(terminal.name)}</h2>"
            f'<p><a href="{e(terminal.screen_url)}" target="_blank" rel="noopener">画面を開く / open the screen</a></p>'
            f"<p>リーダーのカード / card in the reader: <strong>{e(inside or 'なし / none')}</strong></p>"
            f'<form method="post" action="/insert"><input type="hidden" name="terminal" value="{e(kind)}">'
            f'<select name="card_id">{options}</select> <button type="submit">入れる / insert</button></form>'
            f'<form method="post" action="/remove"><input type="hidden" name="terminal" value="{e(kind)}">'
            f'<button type="submit">抜く / remove</button></form></section>'
        )
    notice = f'<p class="notice">{e(desk.notice)}</p>' if desk.notice else ""
    new_card = _NEW_CARD if desk.new_card is not None else ""
    return _DESK.format(notice=notice, sections="\n".join(sections), new_card=new_card)


def _outbox_page(entries: list[Any]) -> str:
    e = html.escape
    rows = "\n".join(
        f"<tr><td>{e(m.created_at.strftime('%H:%M:%S'))}</td><td>{e(m.channel)}</td><td><code>{e(m.address)}</code>"
        f"</td><td><strong>{e(m.subject)}</strong><pre>{e(m.body)}</pre></td></tr>"
        for m in entries
    )
    return _OUTBOX.format(rows=rows or '<tr><td colspan="4">まだありません / nothing yet</td></tr>')


_STYLE = """<style>body{font-family:"Noto Sans CJK JP",sans-serif;margin:2rem;max-width:64rem}
section{border:1px solid #ccc;padding:.5rem 1rem;margin:1rem 0}form{display:inline-block;margin:.2rem}
td{border-bottom:1px solid #ccc;padding:.4rem;vertical-align:top}pre{white-space:pre-wrap;margin:.3rem 0}
button,select{font-size:1rem}.demo{background:#fff3cd;padding:.5rem 1rem}.notice{background:#e6f4ea;padding:.5rem}
</style>"""

_DESK = (
    """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>jpki-remote デモ / demo desk</title>"""
    + _STYLE.replace("{", "{{").replace("}", "}}")
    + """</head><body>
<p class="demo">デモ用: 仮想カードと端末の操作台（実物のカード・リーダーの代わり）。
Demo desk: virtual cards and readers.
<a href="/outbox">受信箱 / outbox (security codes)</a></p>
{notice}
{sections}
{new_card}
</body></html>
"""
)

_OUTBOX = (
    """<!doctype html><html lang="ja"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>デモ受信箱 / demo outbox</title>"""
    + _STYLE.replace("{", "{{").replace("}", "}}")
    + """</head><body>
<p class="demo">開発用アウトボックス（デモ専用）: 登録連絡先に「送った」セキュリティーコードと通知。
本番は SMS・メール。<br>
DEVELOPMENT OUTBOX (demo only): codes and notices "sent" to registered contacts; production sends SMS / e-mail.</p>
<table><thead><tr><th>時刻 time</th><th>種別</th><th>宛先 to</th><th>内容 message</th></tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""
)

_NEW_CARD = """<section><h2>あなた自身のカード / your own card</h2>
<p>顔写真を撮ると、カード作成機関がその写真入りの新しいカード（電子証明書・暗証番号なし）を窓口のリーダーに届けます。
窓口画面の「新規交付」で交付待ちのデモ住民に交付し、暗証番号を決めてから、キオスクで再設定を試せます。<br>
Take a photo: the card centre delivers a new card with it to the counter's reader. Issue it on the counter screen
(new issuance, to the waiting demo resident), choose its PINs, then try a PIN reset at the kiosk with your face.</p>
<video id="v" autoplay playsinline width="320" height="240"></video>
<canvas id="c" width="640" height="480" hidden></canvas>
<form method="post" action="/new-card" id="f"><input type="hidden" name="photo" id="p">
<button type="button" id="cam">カメラ / camera</button>
<button type="button" id="snap">撮影してカードを作る / take the photo, make the card</button></form>
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
</script></section>"""
