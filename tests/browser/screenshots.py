"""Regenerate docs/screenshots/: every kiosk screen (and the phone portal) rendered by Debian's chromium.

    .venv/bin/python tests/browser/screenshots.py [OUT_DIR]

The page router is served on a free loopback port; each screen is brought up with sample content (the holder's
flow itself is exercised by the browser tests), the fake camera shows a real test photo on the face screen.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from camera import still_frames, write_y4m  # noqa: E402

from conftest import BASE_ARGS, CAMERA_ARGS, CHROMIUM, _ThreadedServer  # noqa: E402

REPO = HERE.parent.parent
FACES = REPO.parent / "shared" / "data" / "faces"

SHOW = """([screen, step, done]) => {
  document.querySelectorAll('[data-screen]').forEach(s => s.hidden = s.dataset.screen !== screen);
  const steps = ['card', 'pin', 'face', 'code', 'update', 'done'];
  document.querySelectorAll('#steps li').forEach((li, i) => {
    li.classList.toggle('done', i < steps.indexOf(step) || done);
    if (steps[i] === step) li.setAttribute('aria-current', 'step'); else li.removeAttribute('aria-current');
  });
  document.getElementById('terminal-badge').innerHTML =
    '<span class="ja">端末: ローソン港区芝五丁目店 ／ リーダー: Virtual PCD 00 00</span>';
}"""

SCREENS: list[tuple[str, str, str, str]] = [
    # file name, screen, step, extra script
    ("01-menu", "menu", "", ""),
    ("02-reset-kind", "reset-kind", "", ""),
    ("03-card", "card", "card", ""),
    ("04-pin", "pin", "pin", """
      JPKI.setBilingual(document.getElementById('pin-title-ja'), '利用者証明用電子証明書の暗証番号を入力してください');
      document.getElementById('pin-title-en').textContent = 'Enter your authentication PIN';
      document.getElementById('pin-hint-ja').textContent = '数字4桁。入力した文字は表示されません。';
      document.getElementById('pin-hint-en').textContent = '4 digits. What you type is not shown.';
      const keypad = document.getElementById('keypad');
      keypad.innerHTML = '';
      ['1','2','3','4','5','6','7','8','9','訂正','0','全消去'].forEach(k => {
        const b = document.createElement('button'); b.type = 'button'; b.textContent = k; keypad.appendChild(b); });
      document.getElementById('pin-label').textContent = '利用者証明用電子証明書の暗証番号';
      document.getElementById('pin-input').value = '12';
      document.getElementById('pin-count').textContent = '2 / 4 文字 (characters)';
    """),
    ("05-face", "face", "face", """
      const list = document.getElementById('challenge');
      list.innerHTML = '';
      [['まばたき','Blink','done'],['顔を左に','Turn left','current'],['顔を右に','Turn right','']].forEach((s, i) => {
        const li = document.createElement('li'); li.className = s[2];
        li.innerHTML = '<span class="mark">' + (s[2] === 'done' ? '✓' : i + 1) + '</span><span class="ja">' + s[0]
          + '</span> <span class="en" lang="en">' + s[1] + '</span>';
        list.appendChild(li); });
      document.getElementById('face-progress-bar').style.width = '48%';
      JPKI.setBilingual(document.getElementById('face-instruction'), '顔をゆっくり左に向けて、正面に戻してください',
        'Turn your head to your left, then back');
      const camera = new JPKI.Camera(document.getElementById('camera-video'), document.getElementById('camera-canvas'));
      await camera.open();
      await new Promise(r => setTimeout(r, 1200));
    """),
    ("06-code", "code", "code", """
      JPKI.setBilingual(document.getElementById('code-sent'),
        '090-****-5678 にセキュリティーコードを送りました。届いたコードを入力してください。',
        'We sent a security code to 090-****-5678.');
      document.getElementById('code-input').value = '4821';
    """),
    ("07-update", "working", "update", """
      JPKI.setBilingual(document.getElementById('working-step'), '新しい電子証明書を書き込んでいます',
        'Writing the new certificates');
    """),
    ("08-done", "done", "done", """
      JPKI.setBilingual(document.getElementById('receipt-kind'), '電子証明書の更新（署名用・利用者証明用電子証明書）',
        'Certificate renewal (both certificates)');
      document.getElementById('receipt-ref').textContent = '3f9a 1c02 7be4 55d0 a9e1 04c7 2d6f 9b18';
      document.getElementById('receipt-time').textContent = JPKI.formatTime('2026-12-04T11:42:07Z');
    """),
    ("09-refused", "failed", "face", """
      document.getElementById('failed-ja').textContent =
        '顔照合の回数の上限に達しました。市区町村の窓口で手続してください。';
      document.getElementById('failed-en').textContent =
        'Too many face-match attempts. Please visit the municipal counter.';
      JPKI.setBilingual(document.getElementById('failed-next'),
        'お住まいの市区町村の窓口へお越しください。マイナンバーカードと本人確認書類をお持ちください。',
        'Please visit your municipal counter with your card and an ID document.');
    """),
    ("10-idle", "code", "code", """
      document.getElementById('idle-seconds').textContent = '12';
      document.getElementById('idle-overlay').hidden = false;
    """),
]


def main(out: Path) -> list[Path]:
    from fastapi import FastAPI
    from playwright.sync_api import sync_playwright

    from jpki_remote.web.pages import router

    out.mkdir(parents=True, exist_ok=True)
    app = FastAPI()
    app.include_router(router)
    written = []
    with tempfile.TemporaryDirectory() as tmp, _ThreadedServer(app) as url, sync_playwright() as playwright:
        video = write_y4m(still_frames(FACES / "obama" / "1.jpg", seconds=4), Path(tmp) / "still.y4m")
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*BASE_ARGS, *CAMERA_ARGS, f"--use-file-for-fake-video-capture={video}"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url + "/kiosk?agent=http://127.0.0.1:9")
        page.wait_for_function("!!(window.JPKI && window.JPKI.Camera)")
        for name, screen, step, script in SCREENS:
            page.evaluate(SHOW, [screen, step, screen == "done"])
            if script:
                page.evaluate("async () => {" + script + "}")
            page.evaluate("document.activeElement && document.activeElement.blur()")
            path = out / f"kiosk-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            written.append(path)
        phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True)
        phone.goto(url + "/portal?agent=http://127.0.0.1:9")
        phone.evaluate(SHOW, ["menu", "", False])
        path = out / "portal-phone-menu.png"
        phone.screenshot(path=str(path))
        written.append(path)
        browser.close()
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots"
    for written_path in main(target):
        print(written_path)
