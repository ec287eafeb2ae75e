"""The WhatsApp Business Cloud API: sending through the Graph API's messages endpoint, and
reading its webhooks (signature, verification challenge, messages and statuses).

Plain data in and out, no ORM: the webhook view and the send task map it onto our rows.
"""

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from django.conf import settings

from messaging.channels import SendError, SendReceipt, TransientSendError

from .types import AnnouncedMedia

logger = logging.getLogger(__name__)

# Graph API error codes (Meta's docs) that mean "later", with the pause Meta suggests.
RATE_LIMIT_CODES = {
    4: None,  # application request limit
    80007: None,  # business account rate limit
    130429: None,  # throughput limit of the number (80 msg/s by default)
    131048: None,  # spam rate limit
    131056: 6.0,  # too many messages to the same recipient: about one per 6 s
}
REASONS = {
    190: "The access token is invalid or expired: update it in Settings → WhatsApp.",
    131026: "Message undeliverable: the recipient may not be on WhatsApp.",
    131030: "The recipient is not in the test number's allowed list.",
    131047: "More than 24 hours since the customer last wrote: only a template can be sent.",
    131051: "This message type is not supported.",
    133010: "The phone number is not registered with the Cloud API.",
}


@dataclass(frozen=True)
class CloudCredentials:
    phone_number_id: str
    access_token: str


@dataclass(frozen=True)
class InboundMessage:
    wamid: str
    wa_id: str  # the sender's WhatsApp id (digits of the phone number)
    name: str
    body: str
    timestamp: datetime
    kind: str
    quoted_wamid: str = ""
    media: list[AnnouncedMedia] = field(default_factory=list)


@dataclass(frozen=True)
class StatusUpdate:
    wamid: str
    status: str  # sent, delivered, read, failed
    timestamp: datetime
    error: str = ""


# ---------------------------------------------------------------- sending


def send_text(
    credentials: CloudCredentials, to: str, body: str, *, quoted_wamid: str = ""
) -> SendReceipt:
    """POST /{phone-number-id}/messages; returns the wamid, or raises SendError (transient
    for network trouble, 5xx and rate limits)."""
    payload = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }
    if quoted_wamid:
        payload["context"] = {"message_id": quoted_wamid}
    url = f"{settings.WHATSAPP_GRAPH_URL.rstrip('/')}/{credentials.phone_number_id}/messages"
    try:
        response = httpx.post(
            url,
            json=payload,
            headers={"Authorization": f"Bearer {credentials.access_token}"},
            timeout=settings.WHATSAPP_GRAPH_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise TransientSendError(
            f"The WhatsApp Cloud API could not be reached ({exc.__class__.__name__})."
        ) from exc
    if response.status_code == 200:
        try:
            return SendReceipt(external_id=response.json()["messages"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise SendError("The WhatsApp Cloud API answered without a message id.") from exc
    raise error_from_response(response)


def error_from_response(response: httpx.Response) -> SendError:
    """Map a Graph API error answer onto a SendError whose reason an agent can act on."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = error.get("code")
    message = error.get("message") or f"HTTP {response.status_code}"
    logger.warning("cloud api: send refused http=%s code=%s", response.status_code, code)
    if code in RATE_LIMIT_CODES:
        return TransientSendError(
            f"WhatsApp rate limit ({code}): sending again shortly.",
            retry_after=RATE_LIMIT_CODES[code],
        )
    if response.status_code >= 500:
        return TransientSendError(f"The WhatsApp Cloud API failed ({response.status_code}).")
    if code in REASONS:
        return SendError(REASONS[code])
    return SendError(f"WhatsApp refused the message ({code or response.status_code}): {message}")


# ---------------------------------------------------------------- webhooks


def signature_is_valid(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """X-Hub-Signature-256 is "sha256=" + the HMAC-SHA256 of the raw body with the app secret."""
    if not header or not app_secret or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def verification_answer(params, verify_token: str) -> str | None:
    """The challenge to echo when Meta verifies the webhook with our token; else None."""
    if (
        params.get("hub.mode") == "subscribe"
        and verify_token
        and hmac.compare_digest(params.get("hub.verify_token", ""), verify_token)
    ):
        return params.get("hub.challenge", "")
    return None


MEDIA_KINDS = {"image", "video", "audio", "document", "sticker"}


def parse_webhook(payload: dict) -> tuple[list[InboundMessage], list[StatusUpdate]]:
    """Messages and status updates of one webhook delivery (other fields are ignored)."""
    messages, statuses = [], []
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            if change.get("field") != "messages":
                continue
            value = change.get("value") or {}
            names = {
                contact.get("wa_id"): (contact.get("profile") or {}).get("name", "")
                for contact in value.get("contacts") or []
            }
            for item in value.get("messages") or []:
                messages.append(_inbound(item, names))
            for item in value.get("statuses") or []:
                errors = item.get("errors") or []
                error = ""
                if errors:
                    first = errors[0]
                    error = REASONS.get(first.get("code")) or (
                        f"{first.get('title') or 'Failed'} ({first.get('code')})"
                    )
                statuses.append(
                    StatusUpdate(
                        wamid=item["id"],
                        status=item.get("status", ""),
                        timestamp=_time(item.get("timestamp")),
                        error=error,
                    )
                )
    return messages, statuses


def _inbound(item: dict, names: dict) -> InboundMessage:
    kind = item.get("type", "text")
    media = []
    if kind == "text":
        body = (item.get("text") or {}).get("body", "")
    elif kind in MEDIA_KINDS:
        part = item.get(kind) or {}
        body = part.get("caption", "")
        voice = kind == "audio" and part.get("voice")
        media.append(
            AnnouncedMedia(
                kind="voice" if voice else kind,
                media_id=part.get("id", ""),
                content_type=part.get("mime_type", ""),
                filename=part.get("filename", ""),
            )
        )
    elif kind == "button":
        body = (item.get("button") or {}).get("text", "")
    elif kind == "interactive":
        reply = item.get("interactive") or {}
        chosen = reply.get("button_reply") or reply.get("list_reply") or {}
        body = chosen.get("title", "")
    elif kind == "location":
        place = item.get("location") or {}
        body = f"📍 {place.get('name') or ''} {place.get('latitude')},{place.get('longitude')}"
    else:
        body = f"[{kind} message]"
    wa_id = item.get("from", "")
    return InboundMessage(
        wamid=item["id"],
        wa_id=wa_id,
        name=names.get(wa_id, ""),
        body=body.strip(),
        timestamp=_time(item.get("timestamp")),
        kind=kind,
        quoted_wamid=(item.get("context") or {}).get("id", ""),
        media=media,
    )


def _time(epoch) -> datetime:
    try:
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    except (TypeError, ValueError):
        return datetime.now(tz=UTC)
