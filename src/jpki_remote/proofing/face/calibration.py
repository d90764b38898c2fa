"""Calibration of the decision threshold on a folder of photos laid out one sub-folder per person.

Genuine pairs: two different photos of the same person. Impostor pairs: photos of two different people. Each pair is
scored twice when ``card_condition`` is on: colour-to-colour, and card-photo condition (greyscale JPEG 2000 at card
resolution, see card_photo.py) against the other colour photo — the comparison the kiosk really makes.

``augment`` adds variants of every photo (mirror image, tighter and looser crop, rotation, darker, smaller face,
card condition of the mirror image) to multiply impostor pairs. Those pairs are NOT independent: every variant of a
photo is still the same photo of the same person, so the count overstates the evidence. The report keeps them
apart from the independent pairs.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jpki_remote.proofing.face.card_photo import card_photo_from
from jpki_remote.proofing.face.decode import ImageRejected, decode_image
from jpki_remote.proofing.face.engine import FaceBox, FaceEngine
from jpki_remote.proofing.face.issues import FaceIssue

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class Sample:
    identity: str
    source: str  # the photo file (and face index for group photos)
    variant: str  # "colour", "card", or an augmentation name
    encoding: np.ndarray


@dataclass(frozen=True)
class Problem:
    path: str
    issues: tuple[FaceIssue, ...]
    detail: str = ""


@dataclass
class SampleSet:
    samples: list[Sample] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def identities(self) -> set[str]:
        return {s.identity for s in self.samples}


@dataclass(frozen=True)
class Scores:
    """Distances of one pair condition, sorted ascending, with the closest pairs kept for the report."""

    name: str
    genuine: np.ndarray
    impostor: np.ndarray
    worst_genuine: tuple[tuple[float, str, str], ...]
    closest_impostor: tuple[tuple[float, str, str], ...]

    def fnmr(self, threshold: float) -> float:
        return float(np.mean(self.genuine > threshold)) if self.genuine.size else math.nan

    def fmr(self, threshold: float) -> float:
        return float(np.mean(self.impostor <= threshold)) if self.impostor.size else math.nan

    @property
    def zero_false_match_threshold(self) -> float | None:
        """The largest threshold with no false match on this set (just below the closest impostor pair)."""
        if not self.impostor.size:
            return None
        return float(np.nextafter(self.impostor.min(), 0.0))

    def summary(self, threshold: float) -> dict[str, object]:
        n_imp = int(self.impostor.size)
        false_matches = int(np.sum(self.impostor <= threshold))
        return {
            "condition": self.name,
            "genuine_pairs": int(self.genuine.size),
            "impostor_pairs": n_imp,
            "threshold": threshold,
            "false_non_matches": int(np.sum(self.genuine > threshold)),
            "fnmr": _round(self.fnmr(threshold)),
            "false_matches": false_matches,
            "fmr": _round(self.fmr(threshold)),
            "fmr_upper_95": _round(fmr_upper_bound(false_matches, n_imp)),
            "zero_false_match_threshold": _round(self.zero_false_match_threshold),
            "genuine_distance": distribution(self.genuine),
            "impostor_distance": distribution(self.impostor),
            "worst_genuine": [(_round(d), a, b) for d, a, b in self.worst_genuine],
            "closest_impostor": [(_round(d), a, b) for d, a, b in self.closest_impostor],
        }


def fmr_upper_bound(errors: int, trials: int) -> float:
    """One-sided 95 % upper bound on a rate from ``errors`` in ``trials`` (exact; 0 errors: ≈ 3/N, the rule of 3)."""
    if trials <= 0:
        return math.nan
    if errors == 0:
        return 1.0 - 0.05 ** (1.0 / trials)
    if errors >= trials:
        return 1.0
    low, high = errors / trials, 1.0
    for _ in range(60):  # bisection on the binomial tail P(X <= errors | p) = 0.05
        mid = (low + high) / 2
        if _binomial_cdf(errors, trials, mid) > 0.05:
            low = mid
        else:
            high = mid
    return high


def _binomial_cdf(k: int, n: int, p: float) -> float:
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(k + 1)
    ]
    top = max(log_terms)
    return math.exp(top) * sum(math.exp(t - top) for t in log_terms)


def distribution(values: np.ndarray) -> dict[str, float]:
    if not values.size:
        return {}
    q = np.quantile(values, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    keys = ("min", "p05", "p25", "median", "p75", "p95", "max")
    return {k: round(float(v), 4) for k, v in zip(keys, q, strict=True)} | {"mean": round(float(values.mean()), 4)}


def histogram(
    values: np.ndarray, *, start: float = 0.0, stop: float = 1.2, step: float = 0.05
) -> list[tuple[float, int]]:
    edges = np.arange(start, stop + step / 2, step)
    counts, _ = np.histogram(np.clip(values, start, stop - 1e-9), bins=edges)
    return [(round(float(e), 3), int(c)) for e, c in zip(edges[:-1], counts, strict=True)]


def _round(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), 6)


# ---------------------------------------------------------------- loading

Augmentation = Callable[[np.ndarray, FaceBox], np.ndarray | bytes]


def _flip(rgb: np.ndarray, box: FaceBox) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, ::-1])


def _crop(factor: float) -> Augmentation:
    def crop(rgb: np.ndarray, box: FaceBox) -> np.ndarray:
        cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
        half = box.width * factor / 2
        h, w = rgb.shape[:2]
        top, bottom = int(max(cy - half * 1.2, 0)), int(min(cy + half * 1.2, h))
        left, right = int(max(cx - half, 0)), int(min(cx + half, w))
        return np.ascontiguousarray(rgb[top:bottom, left:right])

    return crop


def _rotate(angle: float) -> Augmentation:
    def rotate(rgb: np.ndarray, box: FaceBox) -> np.ndarray:
        import cv2

        centre = ((box.left + box.right) / 2, (box.top + box.bottom) / 2)
        matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
        return cv2.warpAffine(rgb, matrix, (rgb.shape[1], rgb.shape[0]), borderMode=cv2.BORDER_REFLECT)

    return rotate


def _darker(rgb: np.ndarray, box: FaceBox) -> np.ndarray:
    return (255.0 * (rgb / 255.0) ** 1.6).astype(np.uint8)


def _smaller(rgb: np.ndarray, box: FaceBox) -> np.ndarray:
    import cv2

    scale = min(1.0, 110.0 / max(box.width, 1))
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _card_of_flip(rgb: np.ndarray, box: FaceBox) -> bytes:
    width = rgb.shape[1]
    mirrored = FaceBox(width - box.right, box.top, width - box.left, box.bottom)
    return card_photo_from(np.ascontiguousarray(rgb[:, ::-1]), mirrored)


AUGMENTATIONS: dict[str, Augmentation] = {
    "flip": _flip,
    "crop_tight": _crop(1.6),
    "crop_loose": _crop(3.0),
    "rotate_left": _rotate(8.0),
    "rotate_right": _rotate(-8.0),
    "darker": _darker,
    "smaller": _smaller,
    "card_flip": _card_of_flip,
}


def person_photos(directory: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """{person: [photo paths]} of ``directory``; folders starting with ``_`` and non-image files are ignored."""
    people: dict[str, list[Path]] = {}
    ignored: list[str] = []
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        if folder.name.startswith(("_", ".")):
            ignored.append(f"{folder.name}/")
            continue
        photos = []
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                photos.append(path)
            elif not path.name.startswith("."):
                ignored.append(f"{folder.name}/{path.name}")
        if photos:
            people[folder.name] = photos
    return people, ignored


def load_samples(
    directory: Path,
    *,
    card_condition: bool = True,
    augment: bool = False,
    groups: dict[str, Sequence[str]] | None = None,
    engine: FaceEngine | None = None,
    progress: Callable[[str], None] | None = None,
) -> SampleSet:
    """Encode every usable photo of ``directory`` (and the labelled faces of group photos)."""
    engine = engine or FaceEngine.shared()
    people, ignored = person_photos(directory)
    result = SampleSet(ignored=ignored)
    faces: list[tuple[str, str, np.ndarray, FaceBox]] = []
    for identity, paths in people.items():
        for path in paths:
            name = f"{identity}/{path.name}"
            if progress:
                progress(name)
            try:
                rgb = decode_image(path.read_bytes())
            except ImageRejected as rejected:
                result.problems.append(Problem(name, (rejected.issue,), rejected.detail))
                continue
            except OSError as exc:
                result.problems.append(Problem(name, (FaceIssue.UNREADABLE_IMAGE,), str(exc)))
                continue
            boxes = engine.detect(rgb).boxes
            if len(boxes) != 1:
                issue = FaceIssue.NO_FACE if not boxes else FaceIssue.SEVERAL_FACES
                result.problems.append(Problem(name, (issue,), f"{len(boxes)} faces"))
                continue
            faces.append((identity, name, rgb, boxes[0]))
    for relative, labels in (groups or {}).items():
        path = directory / relative
        try:
            rgb = decode_image(path.read_bytes())
        except (ImageRejected, OSError) as exc:
            result.problems.append(Problem(relative, (FaceIssue.UNREADABLE_IMAGE,), str(exc)))
            continue
        boxes = sorted(engine.detect(rgb).boxes, key=lambda b: b.left + b.right)
        if len(boxes) != len(labels):
            result.problems.append(
                Problem(relative, (FaceIssue.SEVERAL_FACES,), f"{len(boxes)} faces found, {len(labels)} labelled")
            )
            continue
        for index, (label, box) in enumerate(zip(labels, boxes, strict=True)):
            if label:
                # the face's own neighbourhood, so the variants below see one main face
                region = FaceBox(
                    box.left - box.width, box.top - box.height, box.right + box.width, box.bottom + box.height
                ).clipped(rgb.shape[1], rgb.shape[0])
                crop = np.ascontiguousarray(rgb[region.top : region.bottom, region.left : region.right])
                shifted = FaceBox(
                    box.left - region.left, box.top - region.top, box.right - region.left, box.bottom - region.top
                )
                faces.append((label, f"{relative}#{index}", crop, shifted))

    for identity, name, rgb, box in faces:
        result.samples.append(Sample(identity, name, "colour", engine.encode(rgb, box)))
        variants: dict[str, Augmentation] = {}
        if card_condition:
            variants["card"] = card_photo_from
        if augment:
            variants |= AUGMENTATIONS
        for variant, make in variants.items():
            encoding = _encode_main_face(make(rgb, box), engine)
            if encoding is None:
                result.problems.append(Problem(f"{name} [{variant}]", (FaceIssue.NO_FACE,)))
                continue
            result.samples.append(Sample(identity, name, variant, encoding))
    return result


def _encode_main_face(image: np.ndarray | bytes, engine: FaceEngine) -> np.ndarray | None:
    """Encoding of the largest face of a variant (neighbours in group photos may be partly in view)."""
    rgb = decode_image(image) if isinstance(image, bytes) else image
    boxes = engine.detect(rgb).boxes
    if not boxes:
        return None
    return engine.encode(rgb, max(boxes, key=lambda b: b.width))


def load_group_labels(path: Path) -> dict[str, list[str]]:
    """A JSON object {"folder/photo.jpg": ["left person", "next person", ...]} (faces ordered left to right; an
    empty string skips a face)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected an object of photo path -> list of names")
    return data


# ---------------------------------------------------------------- scoring


def score_pairs(
    samples: Sequence[Sample],
    name: str,
    *,
    left: Iterable[str] = ("colour",),
    right: Iterable[str] = ("colour",),
    keep: int = 5,
) -> Scores:
    """Distances between samples whose variants are in ``left`` and ``right``. A genuine pair needs two different
    source photos (a photo is never compared with a variant of itself); each unordered pair is counted once."""
    left_set, right_set = set(left), set(right)
    genuine: list[tuple[float, str, str]] = []
    impostor: list[tuple[float, str, str]] = []
    seen: set[tuple[int, int]] = set()
    encodings = np.stack([s.encoding for s in samples]) if samples else np.zeros((0, 128))
    for i, a in enumerate(samples):
        if a.variant not in left_set:
            continue
        distances = np.linalg.norm(encodings - a.encoding, axis=1)
        for j, b in enumerate(samples):
            if i == j or b.variant not in right_set or a.source == b.source:
                continue
            key = (min(i, j), max(i, j))
            if key in seen:
                continue
            seen.add(key)
            entry = (float(distances[j]), _label(a), _label(b))
            (genuine if a.identity == b.identity else impostor).append(entry)
    genuine.sort()
    impostor.sort()
    return Scores(
        name,
        np.array([g[0] for g in genuine]),
        np.array([i[0] for i in impostor]),
        tuple(genuine[-keep:][::-1]),
        tuple(impostor[:keep]),
    )


def _label(sample: Sample) -> str:
    return sample.source if sample.variant == "colour" else f"{sample.source} [{sample.variant}]"


def standard_conditions(samples: Sequence[Sample]) -> list[Scores]:
    """colour vs colour; card photo vs colour live; and, when variants exist, all variants (augmented)."""
    conditions = [score_pairs(samples, "colour vs colour")]
    if any(s.variant == "card" for s in samples):
        conditions.append(score_pairs(samples, "card photo (JP2 grey) vs colour", left=("card",), right=("colour",)))
    variants = {s.variant for s in samples} - {"colour", "card"}
    if variants:
        everything = {"colour", "card", *variants}
        conditions.append(score_pairs(samples, "augmented (not independent)", left=everything, right=everything))
    return conditions


def recommend_threshold(scores: Scores, target_fnmr: float = 0.03, step: float = 0.01) -> float | None:
    """The smallest threshold (rounded up to ``step``) whose FNMR on ``scores`` is at most ``target_fnmr``: the
    strictest setting that still meets the false non-match goal, so false matches are as rare as the goal allows."""
    if not scores.genuine.size:
        return None
    allowed = math.floor(target_fnmr * scores.genuine.size + 1e-9)  # false non-matches we may have
    ordered = np.sort(scores.genuine)[::-1]
    needed = float(ordered[allowed]) if allowed < ordered.size else 0.0
    return round(math.ceil(needed / step - 1e-9) * step, 6)


def pair_count(identities: dict[str, int]) -> tuple[int, int]:
    """(genuine, impostor) unordered pair counts for {identity: number of photos}."""
    genuine = sum(n * (n - 1) // 2 for n in identities.values())
    total = sum(identities.values())
    return genuine, total * (total - 1) // 2 - genuine


def all_pairs(items: Sequence[str]) -> list[tuple[str, str]]:
    return list(itertools.combinations(items, 2))
