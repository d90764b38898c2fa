"""The quality-gate reasons: one stable code per problem, with the text the kiosk shows (Japanese and English).

The codes are part of the API (the UI and the audit log use them); the texts tell the holder what to do next.
"""

from __future__ import annotations

from jpki_remote.proofing.texts import HolderCode


class FaceIssue(HolderCode):
    """Why an image cannot be used for a face comparison."""

    UNREADABLE_IMAGE = "unreadable_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    IMAGE_TOO_LARGE = "image_too_large"
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    FACE_TOO_SMALL = "face_too_small"
    FACE_CUT_OFF = "face_cut_off"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    TOO_BLURRY = "too_blurry"
    EYES_CLOSED = "eyes_closed"

    @classmethod
    def _texts(cls) -> dict[HolderCode, tuple[str, str]]:
        return _MESSAGES  # type: ignore[return-value]


_MESSAGES: dict[FaceIssue, tuple[str, str]] = {
    FaceIssue.UNREADABLE_IMAGE: (
        "画像を読み取れませんでした。もう一度撮影してください。",
        "The image could not be read. Please take the photo again.",
    ),
    FaceIssue.UNSUPPORTED_FORMAT: (
        "対応していない画像形式です（JPEG・PNG・JPEG 2000 に対応）。",
        "This image format is not supported (JPEG, PNG and JPEG 2000 are).",
    ),
    FaceIssue.IMAGE_TOO_LARGE: (
        "画像が大きすぎます。カメラの解像度を下げて撮影してください。",
        "The image is too large. Please use a lower camera resolution.",
    ),
    FaceIssue.NO_FACE: (
        "顔が見つかりませんでした。カメラの正面に顔を向けてください。",
        "No face was found. Please face the camera.",
    ),
    FaceIssue.SEVERAL_FACES: (
        "複数の顔が写っています。お一人で撮影してください。",
        "Several faces are in the picture. Please make sure you are alone in front of the camera.",
    ),
    FaceIssue.FACE_TOO_SMALL: (
        "顔が小さすぎます。カメラに近づいてください。",
        "Your face is too small in the picture. Please come closer to the camera.",
    ),
    FaceIssue.FACE_CUT_OFF: (
        "顔の一部が画面からはみ出しています。顔全体が枠に入るようにしてください。",
        "Part of your face is outside the picture. Please keep your whole face inside the frame.",
    ),
    FaceIssue.TOO_DARK: (
        "暗すぎます。明るい場所で撮影してください。",
        "The picture is too dark. Please move to a brighter place.",
    ),
    FaceIssue.TOO_BRIGHT: (
        "明るすぎます。強い光や逆光を避けてください。",
        "The picture is too bright. Please avoid strong or direct light.",
    ),
    FaceIssue.TOO_BLURRY: (
        "画像がぼやけています。動かずにもう一度撮影してください。",
        "The picture is blurred. Please hold still and try again.",
    ),
    FaceIssue.EYES_CLOSED: (
        "目が閉じています。目を開けてカメラを見てください。",
        "Your eyes are closed. Please open your eyes and look at the camera.",
    ),
}
