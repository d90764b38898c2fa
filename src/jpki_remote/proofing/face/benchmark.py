"""`jpki-remote bench face`: milliseconds per verification on this machine, against a reference in the same run.

One verification = decode + HOG detection at ~640 px + quality gate (face mesh for the eyes) + encoding + distance
to a cached card-photo encoding. The reference is the face_recognition library's own default pipeline on the same
photos: HOG detection on the full-resolution image (upsample 1) + encoding — what a naive integration would run.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jpki_remote.proofing.face.card_photo import card_photo_from
from jpki_remote.proofing.face.decode import decode_image
from jpki_remote.proofing.face.engine import FaceEngine
from jpki_remote.proofing.face.verifier import FaceVerifier, Reference, ReferenceKind

DEFAULT_PHOTOS = ("obama/1.jpg", "biden/1.jpg", "kit_harington/3.jpg", "rose_leslie/2.jpg", "john_lennon/1.jpg")


def default_photos() -> list[Path]:
    candidates = [Path(os.environ["JPKI_SHARED_DIR"])] if os.environ.get("JPKI_SHARED_DIR") else []
    candidates += [Path.cwd().parent / "shared", Path(__file__).resolve().parents[4].parent / "shared"]
    for shared in candidates:
        faces = shared / "data" / "faces"
        if faces.is_dir():
            return [faces / p for p in DEFAULT_PHOTOS if (faces / p).is_file()]
    return []


def run_face_benchmark(images: Sequence[Path], *, rounds: int = 5) -> int:
    paths = list(images) or default_photos()
    if not paths:
        print("no photos: pass live photos or set JPKI_SHARED_DIR to the folder holding data/faces")
        return 2
    photos = [p.read_bytes() for p in paths]
    engine = FaceEngine.shared()
    engine.warm_up()
    verifier = FaceVerifier(0.5, engine=engine)

    # the card photo of the first person, encoded once (as the per-card cache does)
    first = decode_image(photos[0])
    card = card_photo_from(first, engine.detect(first).boxes[0])
    card_encoding, _, _ = verifier.encode_reference(Reference(ReferenceKind.CARD_PHOTO, image=card))
    if card_encoding is None:
        print("the card photo of the first image has no usable face")
        return 2
    references = [Reference(ReferenceKind.CARD_PHOTO, encoding=card_encoding)]
    verifier.verify(photos[0], references)  # warm-up (face mesh graph, caches)

    totals: list[float] = []
    parts: dict[str, list[float]] = {}
    for _ in range(rounds):
        for photo in photos:
            start = time.perf_counter()
            decision = verifier.verify(photo, references)
            totals.append((time.perf_counter() - start) * 1000.0)
            for name, value in decision.timings_ms.items():
                if name != "total":
                    parts.setdefault(name, []).append(value)
    reference_ms = _library_reference(photos, rounds)

    ours = statistics.median(totals)
    print(f"face verification on {len(photos)} photos x {rounds} rounds (median per verification)")
    print(f"  ours: {ours:8.1f} ms   (detection at {engine.detection_size} px, upsample {engine.upsample})")
    for name in ("decode", "detect", "quality", "encode"):
        if name in parts:
            print(f"    {name:<8} {statistics.median(parts[name]):8.1f} ms")
    compare = _time_compare(card_encoding)
    print(f"    compare  {compare * 1000:8.4f} µs")
    if reference_ms is None:
        print("  reference: face_recognition is not installed; no ratio")
        return 0
    print(
        f"  reference (face_recognition defaults: full-resolution HOG, upsample 1, + encoding): {reference_ms:8.1f} ms"
    )
    print(f"  ratio reference / ours: {reference_ms / ours:.2f}x")
    return 0


def _time_compare(encoding: np.ndarray, repeats: int = 10000) -> float:
    other = encoding + 0.01
    start = time.perf_counter()
    for _ in range(repeats):
        float(np.linalg.norm(encoding - other))
    return (time.perf_counter() - start) * 1000.0 / repeats


def _library_reference(photos: Sequence[bytes], rounds: int) -> float | None:
    from PIL import ImageFile

    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        import face_recognition
    except ImportError:
        return None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    import face_recognition

    arrays = [decode_image(p) for p in photos]
    times: list[float] = []
    for _ in range(max(1, rounds // 2)):
        for rgb in arrays:
            start = time.perf_counter()
            locations = face_recognition.face_locations(rgb)
            face_recognition.face_encodings(rgb, locations)
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)
