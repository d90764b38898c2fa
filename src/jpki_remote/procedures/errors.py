"""Procedure errors with stable codes and bilingual messages (the API returns them as JSON)."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "not_found": ("手続が見つかりません。", "No such procedure."),
    "card_unavailable": (
        "このカードではこの手続を利用できません。市区町村の窓口にお問い合わせください。",
        "This procedure is not available for this card. Please contact your municipal office.",
    ),
    "card_busy": ("このカードは別の手続の途中です。", "Another procedure is in progress for this card."),
    "card_reported_lost": (
        "このカードは紛失の届出があったため、手続を終了しました。カードの電子証明書は失効しています。",
        "This card has been reported lost, so this procedure has ended. Its certificates are revoked.",
    ),
    "not_allowed": ("この手続はこの窓口・端末ではできません。", "This procedure is not offered on this channel."),
    "not_in_renewal_window": (
        "更新できる期間ではありません（有効期限の3か月前から）。",
        "Renewal is not open yet (it opens 3 months before expiry).",
    ),
    "wrong_terminal": ("この端末からは操作できません。", "This procedure belongs to another terminal."),
    "out_of_sequence": ("通信の順序が正しくありません。", "Out-of-sequence exchange."),
    "not_active": ("この手続は終了しています。", "The procedure has ended."),
    "invalid_request": ("要求の内容が正しくありません。", "The request is malformed."),
    "proof_not_required": ("この確認はこの手続では不要です。", "This proof is not part of this procedure."),
    "wrong_step": ("今はこの操作はできません。", "This action is not possible at this step."),
    "pin_blocked": (
        "暗証番号がロックされています。暗証番号の初期化・再設定を行ってください。",
        "The PIN is locked. Please reset it first.",
    ),
    "face_limit": (
        "顔照合の回数の上限に達しました。市区町村の窓口で手続してください。",
        "Too many face-match attempts. Please visit the municipal counter.",
    ),
    "face_refused": (
        "顔照合ができませんでした。市区町村の窓口で手続してください。",
        "Face verification could not be completed. Please visit the municipal counter.",
    ),
    "code_locked": (
        "セキュリティーコードの入力回数の上限に達しました。最初からやり直してください。",
        "Too many wrong security codes. Please start again.",
    ),
    "no_contact": (
        "登録された連絡先がありません。市区町村の窓口で登録してください。",
        "No registered contact. Please register one at the municipal counter.",
    ),
    "code_refused": ("セキュリティーコードを送信できませんでした。", "The security code could not be sent."),
    "certificate_invalid": (
        "カードの電子証明書が有効ではありません。市区町村の窓口にお問い合わせください。",
        "The card's certificate is not valid. Please contact your municipal office.",
    ),
    "card_error": (
        "カードとの通信でエラーが発生しました。カードを置き直してください。",
        "Card communication failed. Please place the card again.",
    ),
    "issuance_failed": (
        "証明書を発行できませんでした。時間をおいて再度お試しください。",
        "The certificates could not be issued. Please try again later.",
    ),
    "expired": ("時間切れのため手続を中止しました。", "The procedure timed out."),
    "pin_incorrect": ("暗証番号が違います。", "Wrong PIN."),
    "code_b_incorrect": ("照合番号Bが違います。", "Wrong verification code B."),
    "new_pin_invalid": (
        "新しい暗証番号の形式が正しくありません（署名用は英大文字と数字6〜16文字、その他は数字4桁）。",
        "The new PIN has the wrong format (sign password: 6-16 of A-Z and 0-9; others: 4 digits).",
    ),
    "card_removed": ("カードを置いてください。", "Please place the card on the reader."),
    "face_retry": ("顔がうまく確認できませんでした。もう一度お願いします。", "Face not verified. Please try again."),
    "code_wrong": ("セキュリティーコードが違います。", "Wrong security code."),
    "code_expired": (
        "セキュリティーコードの有効期限が切れました。再送信してください。",
        "The code expired. Please request a new one.",
    ),
    "photo_unreadable": (
        "写真を画像として読み取れませんでした。JPEG・PNG などの画像ファイルを指定してください。",
        "The photo could not be read as an image. Please provide a JPEG, PNG or similar image file.",
    ),
    "card_locked": (
        "このカードは発行者用の認証が停止（ロック）されているため、ここではお手続きできません。"
        "お住まいの市区町村の窓口へお越しください。",
        "The card's issuer domain is locked, so this procedure cannot be done here. "
        "Please visit your municipal office counter.",
    ),
    "card_mismatch": ("手続を始めたカードと異なります。", "This is not the card the procedure started with."),
    "internal": ("システムエラーが発生しました。", "A system error occurred."),
    "surface_invalid": (
        "カードの券面情報を確認できませんでした（発行者の署名が正しくありません）。市区町村の窓口にお問い合わせください。",
        "The card's surface data could not be verified (the issuer signature is not valid). "
        "Please contact your municipal office.",
    ),
    "surface_mismatch": (
        "カードの券面情報が住民票の記録と一致しません。カードを確認してください。",
        "The card's surface data does not match the resident record. Please check the card.",
    ),
    "audit_unavailable": (
        "ただいま手続を進めることができません。しばらく時間をおいてから、もう一度お試しください。",
        "The procedure cannot continue right now. Please try again in a little while.",
    ),
    "locked_out": (
        "確認の回数が上限に達したため、この端末ではお手続きできません。お住まいの市区町村の窓口へお越しください。",
        "Too many attempts: this procedure cannot be done here. Please visit your municipal office counter.",
    ),
    "rate_limited": (
        "試行回数が上限に達しました。しばらく時間をおいてからお試しください。",
        "Too many attempts from here. Please try again later.",
    ),
}


class ProcedureError(Exception):
    """A refusal the API shows to the user. ``http_status`` is the status the API answers with; ``retry_after``
    (seconds) when waiting helps — a 429 of the rate limits, a code resend too soon — is sent as ``Retry-After``."""

    def __init__(
        self,
        code: str,
        http_status: int = 400,
        detail: dict[str, object] | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        ja, en = MESSAGES.get(code, MESSAGES["internal"])
        super().__init__(en)
        self.code = code
        self.http_status = http_status
        self.message_ja = ja
        self.message_en = en
        self.detail = detail or {}
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message_ja": self.message_ja, "message_en": self.message_en}
        if self.detail:
            body["detail"] = self.detail
        return body


def message(code: str) -> dict[str, str]:
    ja, en = MESSAGES.get(code, (code, code))
    return {"code": code, "ja": ja, "en": en}
