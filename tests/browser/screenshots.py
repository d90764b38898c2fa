"""Regenerate docs/screenshots/: the kiosk screens of REAL procedures, taken by the end-to-end browser tests.

    .venv/bin/python tests/browser/screenshots.py

runs ``tests/browser/test_e2e_kiosk.py``, ``test_e2e_portal.py``, the portal's loss report and the counter's unlock
test with ``JPKI_SCREENSHOTS=1``: a renewal at the kiosk (menu, card, PIN keypad, face check while filming, security
code, inactivity warning, card update, receipt), the reset menu of a PIN reset, a card locked out by the limits sent to
the counter, another person's face refused, the portal's menu at phone width and its loss report (card number,
confirmation, done) — each page exactly as chromium rendered it in that run, on the real server with the real terminal
agent and card.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def main() -> int:
    env = {**os.environ, "JPKI_SCREENSHOTS": "1"}
    limits = "test_e2e_counter.py::test_holder_sent_to_the_counter_by_the_limits_is_unlocked_by_staff"
    loss = "test_e2e_loss_report.py::test_loss_report_in_the_portal"
    tests = [str(HERE / "test_e2e_kiosk.py"), str(HERE / "test_e2e_portal.py"), str(HERE / loss), str(HERE / limits)]
    command = [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(command, env=env, cwd=REPO, check=False)
    for path in sorted((REPO / "docs" / "screenshots").glob("*.png")):
        print(path)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
