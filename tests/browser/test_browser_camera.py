"""The kiosk's camera path in a real chromium: the fake camera plays a video built from a real photo, the page's
camera.js captures the liveness sequence on its timetable (getUserMedia → canvas → JPEG), and the proofing
package's real liveness checker judges the frames the browser produced. The asked order passes; another order, a
still person and another person's face (against the first person's card photo) fail."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from conftest import RunningServer
from jpki_remote.config import Settings
from jpki_remote.proofing.face import FaceVerifier, Reference, ReferenceKind
from jpki_remote.proofing.face.card_photo import card_photo_from
from jpki_remote.proofing.face.decode import decode_image
from jpki_remote.proofing.face.engine import FaceEngine
from jpki_remote.proofing.liveness import ChallengeStep, LivenessChallenge, check_liveness

pytestmark = pytest.mark.slow

ORDER = ("turn_right", "blink", "turn_left")
CAPTURE = """async (order) => {
  const camera = new JPKI.Camera(document.getElementById('camera-video'), document.getElementById('camera-canvas'));
  const shown = [];
  const blobs = await camera.captureChallenge(order, { onStep(i) { shown.push(i); }, onProgress() {} });
  camera.close();
  const frames = [];
  for (const blob of blobs) {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let text = '';
    for (let i = 0; i < bytes.length; i += 1) text += String.fromCharCode(bytes[i]);
    frames.push({ type: blob.type, data: btoa(text) });
  }
  return { frames, shown };
}"""


def capture(browser: Any, url: str, order: tuple[str, ...]) -> list[bytes]:
    page = browser.new_page()
    page.goto(url + "/kiosk")
    page.wait_for_function("() => !!(window.JPKI && window.JPKI.Camera)")  # a function: the CSP refuses eval
    result = page.evaluate(CAPTURE, list(order))
    assert result["shown"] == [-1, *range(len(order)), len(order)]
    assert {f["type"] for f in result["frames"]} == {"image/jpeg"}
    page.close()
    return [base64.b64decode(f["data"]) for f in result["frames"]]


def challenge(order: tuple[str, ...]) -> LivenessChallenge:
    return LivenessChallenge(tuple(ChallengeStep(s) for s in order))


@pytest.fixture(scope="module")
def card_reference(faces_dir: Path) -> Any:
    """Obama's card photo (greyscale JPEG 2000 as on the card), from a different photo than the camera's."""
    rgb = decode_image((faces_dir / "obama" / "3.jpg").read_bytes())
    photo = card_photo_from(rgb, FaceEngine.shared().detect(rgb).boxes[0])
    encoding, verdict, _ = FaceVerifier(Settings().face_threshold).encode_reference(
        Reference(ReferenceKind.CARD_PHOTO, image=photo))
    assert encoding is not None, verdict
    return encoding


def test_captured_sequence_passes_the_real_liveness_check(
    pages_server: RunningServer, browser_factory: Any, y4m_cache: Any, card_reference: Any
) -> None:
    browser = browser_factory(camera=y4m_cache("obama", ORDER))
    frames = capture(browser, pages_server.url, ORDER)
    assert 20 <= len(frames) <= 90
    result = check_liveness(challenge(ORDER), frames, reference=card_reference)
    assert result.passed, result.as_dict("en")
    assert [o.action.value for o in result.observed if o.valid] == list(ORDER)
    # the same frames do not answer a different challenge
    assert not check_liveness(challenge(("blink", "turn_left", "turn_right")), frames).passed
    # a second capture on the same page restarts the video: the timetable holds again
    again = capture(browser, pages_server.url, ORDER)
    assert check_liveness(challenge(ORDER), again, reference=card_reference).passed


def test_a_still_person_fails_liveness(pages_server: RunningServer, browser_factory: Any, y4m_cache: Any) -> None:
    browser = browser_factory(camera=y4m_cache("obama"))
    frames = capture(browser, pages_server.url, ORDER)
    result = check_liveness(challenge(ORDER), frames)
    assert not result.passed


def test_another_persons_face_does_not_match_the_card(
    pages_server: RunningServer, browser_factory: Any, y4m_cache: Any, card_reference: Any
) -> None:
    browser = browser_factory(camera=y4m_cache("biden", ORDER))
    frames = capture(browser, pages_server.url, ORDER)
    result = check_liveness(challenge(ORDER), frames, reference=card_reference)
    assert not result.passed
    assert result.reference_distance is not None and result.reference_distance > Settings().face_threshold
