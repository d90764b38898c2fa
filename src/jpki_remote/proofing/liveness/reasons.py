"""Why a liveness check failed: stable codes for the UI and the audit log, with ja/en texts."""

from __future__ import annotations

from jpki_remote.proofing.texts import HolderCode


class LivenessReason(HolderCode):
    CHALLENGE_EXPIRED = "challenge_expired"
    TOO_FEW_FRAMES = "too_few_frames"
    TOO_MANY_FRAMES = "too_many_frames"
    UNREADABLE_FRAME = "unreadable_frame"
    FACE_MISSING = "face_missing"
    SEVERAL_FACES = "several_faces"
    NO_MOVEMENT = "no_movement"
    PLANAR_MOTION = "planar_motion"
    STEP_MISSING = "step_missing"
    WRONG_ORDER = "wrong_order"
    IDENTITY_CHANGED = "identity_changed"
    REFERENCE_MISMATCH = "reference_mismatch"

    @classmethod
    def _texts(cls) -> dict[HolderCode, tuple[str, str]]:
        return _MESSAGES  # type: ignore[return-value]


_MESSAGES = {
    LivenessReason.CHALLENGE_EXPIRED: ("時間切れです。最初からやり直してください。", "Time is up. Please start again."),
    LivenessReason.TOO_FEW_FRAMES: (
        "撮影が短すぎます。もう一度お願いします。",
        "The recording was too short. Please try again.",
    ),
    LivenessReason.TOO_MANY_FRAMES: (
        "撮影が長すぎます。もう一度お願いします。",
        "The recording was too long. Please try again.",
    ),
    LivenessReason.UNREADABLE_FRAME: ("カメラ画像を読み取れませんでした。", "A camera frame could not be read."),
    LivenessReason.FACE_MISSING: (
        "顔が画面から外れました。顔を枠の中に保ってください。",
        "Your face left the frame. Please keep it inside the frame.",
    ),
    LivenessReason.SEVERAL_FACES: ("複数の顔が写っています。お一人で操作してください。", "Several faces are visible."),
    LivenessReason.NO_MOVEMENT: (
        "動きが確認できませんでした。指示に従って動いてください。",
        "No movement was seen. Please follow the instructions.",
    ),
    LivenessReason.PLANAR_MOTION: (
        "ご本人の動きを確認できませんでした。写真や画面ではなく、ご本人が操作してください。",
        "The movement looked like a flat picture, not a person.",
    ),
    LivenessReason.STEP_MISSING: (
        "指示された動作が確認できませんでした。もう一度お願いします。",
        "A requested action was not seen. Please try again.",
    ),
    LivenessReason.WRONG_ORDER: (
        "指示と違う順番で動作が行われました。画面の指示の順にお願いします。",
        "The actions were not done in the requested order.",
    ),
    LivenessReason.IDENTITY_CHANGED: (
        "撮影中に別の方に替わりました。ご本人だけで操作してください。",
        "A different person appeared during the check.",
    ),
    LivenessReason.REFERENCE_MISMATCH: (
        "カードの顔写真と一致しませんでした。",
        "The face does not match the photo on the card.",
    ),
}
