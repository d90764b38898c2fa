"""The texts sent to holders: the security-code message and the notices after a completed procedure.

Japanese first, then one English line. The code appears only in the body of the code message; notices carry no
code, PIN, name or card number — only what happened, when (JST), where (kiosk / online / counter) and what to do if
the holder did not do it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from jpki_remote.proofing.delivery.base import Message

JST = timezone(timedelta(hours=9), "JST")
SERVICE = "公的個人認証サービス"

PURPOSES_JA = {
    "renewal": "電子証明書の更新",
    "pin_reset": "暗証番号の初期化・再設定",
    "pin_change": "暗証番号の変更",
    "revocation": "電子証明書の失効",
    "issuance": "電子証明書の発行",
    "loss_report": "マイナンバーカードの紛失の届出",
}
PIN_KINDS_JA = {
    "sign": "署名用電子証明書のパスワード",
    "auth": "利用者証明用暗証番号",
    "residence": "住民基本台帳用暗証番号",
    "text": "券面事項入力補助用暗証番号",
}
PIN_KINDS_EN = {
    "sign": "signature certificate password",
    "auth": "user authentication PIN",
    "residence": "resident registry PIN",
    "text": "text input support PIN",
}
CHANNELS_JA = {"kiosk": "コンビニ等のキオスク端末", "online": "オンライン（ご自身の端末）", "counter": "市区町村窓口"}


def code_message(code: str, purpose: str, ttl_seconds: int) -> Message:
    minutes = max(1, ttl_seconds // 60)
    what = PURPOSES_JA.get(purpose, "お手続き")
    body = (
        f"{SERVICE}のセキュリティーコードは {code} です。\n"
        f"有効期限は{minutes}分です（{what}）。このコードは誰にも教えないでください。"
        "職員や事業者が電話等でコードを尋ねることはありません。\n"
        "お心当たりがない場合は、お住まいの市区町村窓口にご連絡ください。\n"
        f"Your JPKI security code is {code}, valid for {minutes} minutes. Never share it with anyone."
    )
    sms = (
        f"{SERVICE} セキュリティーコード {code}（{minutes}分間有効）。誰にも教えないでください。\n"
        f"JPKI code {code} ({minutes} min)."
    )
    return Message(subject=f"【{SERVICE}】セキュリティーコード / Security code", body=body, sms=sms)


class EventKind(enum.StrEnum):
    RENEWAL = "renewal"  # both certificates renewed
    PIN_RESET = "pin_reset"  # a PIN initialised / re-set
    PIN_CHANGE = "pin_change"
    REVOCATION = "revocation"
    ISSUANCE = "issuance"  # certificates issued on a new card (counter issuance)
    LOSS_REPORT = "loss_report"  # card reported lost: both certificates revoked, no remote procedure any more


@dataclass(frozen=True)
class HolderEvent:
    """A completed procedure the holder is told about. ``pin_kind``: sign/auth/residence/text for PIN events."""

    kind: EventKind
    procedure_id: str
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    channel: str = "online"  # kiosk / online / counter
    pin_kind: str | None = None


def notice_message(event: HolderEvent) -> Message:
    when = event.occurred_at.astimezone(JST).strftime("%Y年%m月%d日 %H:%M")
    when_en = event.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    where = CHANNELS_JA.get(event.channel, event.channel)
    if event.kind is EventKind.LOSS_REPORT:
        return _loss_report_message(event, when, when_en, where)
    pin_ja = PIN_KINDS_JA.get(event.pin_kind or "", "暗証番号")
    pin_en = PIN_KINDS_EN.get(event.pin_kind or "", "PIN")
    what_ja, what_en = {
        EventKind.RENEWAL: (
            "マイナンバーカードの電子証明書（署名用・利用者証明用）が更新されました",
            "the electronic certificates on your My Number Card were renewed",
        ),
        EventKind.PIN_RESET: (f"マイナンバーカードの{pin_ja}が初期化・再設定されました", f"your {pin_en} was reset"),
        EventKind.PIN_CHANGE: (f"マイナンバーカードの{pin_ja}が変更されました", f"your {pin_en} was changed"),
        EventKind.REVOCATION: (
            "マイナンバーカードの電子証明書が失効しました",
            "the electronic certificates on your My Number Card were revoked",
        ),
        EventKind.ISSUANCE: (
            "マイナンバーカードの電子証明書が発行されました",
            "the electronic certificates on your My Number Card were issued",
        ),
    }[event.kind]
    body = (
        f"{when}（日本時間）、{where}で、{what_ja}。\n"
        f"受付番号: {event.procedure_id}\n"
        "お心当たりがない場合は、至急お住まいの市区町村窓口にご連絡ください。"
        "このメッセージに返信する必要はありません。\n"
        f"On {when_en}, {what_en} ({event.channel}). If this was not you, contact your municipal office at once."
    )
    sms = f"{SERVICE}: {when} {what_ja}（受付番号 {event.procedure_id}）。心当たりがない場合は市区町村窓口へ。"
    return Message(subject=f"【{SERVICE}】お手続き完了のお知らせ / Notice of completed procedure", body=body, sms=sms)


def _loss_report_message(event: HolderEvent, when: str, when_en: str, where: str) -> Message:
    """A loss report (紛失届) was completed: what happened, that the card can no longer be used remotely, and what to do
    if the holder did not report it. No card number, name or code — the procedure's reference only."""
    body = (
        f"{when}（日本時間）、{where}で、マイナンバーカードの紛失の届出を受け付けました。\n"
        "このカードの電子証明書（署名用・利用者証明用）は失効しました。このカードでは、コンビニ等のキオスク端末や"
        "オンラインでの手続（電子証明書の更新・暗証番号の初期化など）はできません。"
        "カードが見つかった場合や再交付は、お住まいの市区町村窓口でお手続きください。\n"
        f"受付番号: {event.procedure_id}\n"
        "ご自身で届け出ていない場合は、至急お住まいの市区町村窓口にご連絡ください"
        "（受付番号をお伝えください）。このメッセージに返信する必要はありません。\n"
        f"On {when_en}, a loss report for your My Number Card was accepted ({event.channel}): its electronic "
        "certificates were revoked and the card can no longer be used for kiosk or online procedures. If you did "
        "not report it, contact your municipal office at once; for a new card, or if you find it, visit the counter."
    )
    sms = (
        f"{SERVICE}: {when} マイナンバーカードの紛失届を受付。電子証明書は失効し、遠隔の手続はできません"
        f"（受付番号 {event.procedure_id}）。届け出ていない場合は至急市区町村窓口へ。"
    )
    return Message(
        subject=f"【{SERVICE}】マイナンバーカードの紛失の届出の受付 / Loss of your My Number Card reported",
        body=body,
        sms=sms,
    )
