"""Calibration arithmetic and the operator commands `face eval`, `face compare` and `bench face`."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from jpki_remote.cli import main
from jpki_remote.proofing.face.calibration import Scores, fmr_upper_bound, recommend_threshold


def _scores(genuine: list[float], impostor: list[float]) -> Scores:
    return Scores("test", np.array(sorted(genuine)), np.array(sorted(impostor)), (), ())


def test_rates_and_zero_false_match_threshold() -> None:
    scores = _scores([0.2, 0.3, 0.45, 0.5], [0.48, 0.7, 0.9])
    assert scores.fnmr(0.46) == 0.25 and scores.fmr(0.46) == 0.0
    assert scores.fmr(0.48) == pytest.approx(1 / 3)
    assert scores.zero_false_match_threshold < 0.48 and scores.fmr(scores.zero_false_match_threshold) == 0.0


def test_rule_of_three() -> None:
    assert fmr_upper_bound(0, 30_000) == pytest.approx(3 / 30_000, rel=0.01)
    assert fmr_upper_bound(0, 211) == pytest.approx(0.0141, rel=0.01)
    assert fmr_upper_bound(1, 100) == pytest.approx(0.0466, rel=0.02)  # exact binomial bound
    assert math.isnan(fmr_upper_bound(0, 0))


def test_recommended_threshold_is_the_strictest_meeting_the_fnmr_goal() -> None:
    genuine = [i / 100 for i in range(20, 60)]  # 40 pairs, 0.20 … 0.59
    assert recommend_threshold(_scores(genuine, [0.8]), 0.03) == 0.58  # one false non-match (0.59) allowed
    assert recommend_threshold(_scores(genuine, [0.8]), 0.0) == 0.59


def _person_folder(faces_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "people"
    for person, photos in {"obama": ["1.jpg", "2.jpg", "3.jpg"], "biden": ["1.jpg", "2.jpg"], "kit": []}.items():
        (root / person).mkdir(parents=True)
        for photo in photos:
            shutil.copy(faces_dir / person / photo, root / person / photo)
    shutil.copy(faces_dir / "lin_manuel_miranda" / "1.png", root / "kit" / "miranda.PNG")  # PNG, odd case
    (root / "biden" / "notes.txt").write_text("not a photo")
    data = (faces_dir / "rose_leslie" / "1.jpg").read_bytes()
    (root / "biden" / "broken.jpg").write_bytes(data[: len(data) // 3])
    (root / "_extra").mkdir()
    shutil.copy(faces_dir / "_several_faces" / "two_people.jpg", root / "_extra" / "x.jpg")
    return root


@pytest.mark.slow
def test_face_eval_on_any_folder(faces_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _person_folder(faces_dir, tmp_path)
    assert main(["face", "eval", str(root), "--json", "--threshold", "0.56"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["people"] == 3 and report["photos_used"] == 6
    colour, card = report["conditions"][:2]
    assert colour["genuine_pairs"] == 3 + 1 and colour["impostor_pairs"] == 15 - 4
    assert colour["false_matches"] == 0 and colour["false_non_matches"] == 0
    assert card["genuine_pairs"] == 8 and card["impostor_pairs"] == 22
    assert colour["zero_false_match_threshold"] > 0.56
    assert [p["photo"] for p in report["unusable"]] == ["biden/broken.jpg"]
    assert "biden/notes.txt" in report["ignored"] and "_extra/" in report["ignored"]
    assert report["recommended_threshold"]["value"] is not None
    assert main(["face", "eval", str(root / "missing")]) == 2


def test_face_compare_prints_distance_decision_and_verdicts(faces_dir: Path, capsys: pytest.CaptureFixture) -> None:
    same = main(["face", "compare", str(faces_dir / "obama" / "2.jpg"), str(faces_dir / "obama" / "1.jpg"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert same == 0 and report["match"] and report["distance"] <= report["threshold"]
    assert report["live"]["ok"] and report["reference"]["ok"]

    other = main(["face", "compare", str(faces_dir / "biden" / "1.jpg"), str(faces_dir / "obama" / "1.jpg")])
    text = capsys.readouterr().out
    assert other == 1 and "NO MATCH" in text and "distance:" in text

    bad = main(
        [
            "face",
            "compare",
            "--lang",
            "en",
            str(faces_dir / "_hard" / "obama_partial_face.jpg"),
            str(faces_dir / "README.md"),
        ]
    )
    text = capsys.readouterr().out
    assert bad == 1 and "face_cut_off" in text and "unsupported_format" in text and "Part of your face" in text
    assert main(["face", "compare", str(faces_dir / "nothing.jpg"), str(faces_dir / "obama" / "1.jpg")]) == 2


@pytest.mark.slow
def test_bench_face_reports_a_ratio(faces_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "face", "--rounds", "1", str(faces_dir / "obama" / "2.jpg")]) == 0
    out = capsys.readouterr().out
    assert "ms" in out and "ratio reference / ours" in out and "detect" in out and "encode" in out
