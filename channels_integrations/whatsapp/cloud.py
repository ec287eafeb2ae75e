"""The WhatsApp Business Cloud API: sending through the Graph API's messages endpoint, and
reading its webhooks (signature, verification challenge, messages and statuses).

Plain data in and out, no ORM: the webhook view and the send task map it onto our rows.
"""

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from django.conf import settings

from messaging.channels import (
    DownloadError,
    MediaToFetch,
    OutboundFile,
    SendError,
    SendReceipt,
    TransientSendError,
)

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

_clients: dict[int, httpx.Client] = {}


def http() -> httpx.Client:
    """One pooled client per process (a forked worker makes its own): a new client per call
    loads the CA bundle again (~150 ms here) and opens a new connection."""
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        client = _clients[pid] = httpx.Client()
    return client


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
        response = http().post(
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


CAPTIONED = {"image", "video", "document"}  # audio takes no caption


def _graph(credentials: CloudCredentials, path: str) -> str:
    return f"{settings.WHATSAPP_GRAPH_URL.rstrip('/')}/{credentials.phone_number_id}/{path}"


def _bearer(credentials: CloudCredentials) -> dict:
    return {"Authorization": f"Bearer {credentials.access_token}"}


def upload_media(credentials: CloudCredentials, file: OutboundFile) -> str:
    """POST /{phone-number-id}/media (multipart): the file streamed from storage (httpx reads
    the file object in chunks, never whole); returns Meta's media id."""
    try:
        with file.open() as handle:
            response = http().post(
                _graph(credentials, "media"),
                data={"messaging_product": "whatsapp", "type": file.content_type},
                files={"file": (file.filename, handle, file.content_type)},
                headers=_bearer(credentials),
                timeout=settings.WHATSAPP_GRAPH_TIMEOUT,
            )
    except FileNotFoundError as exc:
        raise SendError(f"The file “{file.filename}” is missing from our storage.") from exc
    except httpx.HTTPError as exc:
        raise TransientSendError(
            f"The WhatsApp Cloud API could not be reached ({exc.__class__.__name__})."
        ) from exc
    if response.status_code == 200:
        try:
            return str(response.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SendError(
                "The WhatsApp Cloud API answered an upload without a media id."
            ) from exc
    raise error_from_response(response)


def send_media(
    credentials: CloudCredentials,
    to: str,
    file: OutboundFile,
    media_id: str,
    *,
    caption: str = "",
    quoted_wamid: str = "",
) -> SendReceipt:
    """POST /{phone-number-id}/messages of an uploaded file: `{type: kind, kind: {id, caption,
    filename}}` (a document keeps its name; audio has no caption)."""
    kind = file.kind if file.kind in ("image", "video", "audio", "document") else "document"
    part = {"id": media_id}
    if caption and kind in CAPTIONED:
        part["caption"] = caption
    if kind == "document":
        part["filename"] = file.filename
    return _post_message(credentials, to, {"type": kind, kind: part}, quoted_wamid)


def _post_message(
    credentials: CloudCredentials, to: str, content: dict, quoted_wamid: str
) -> SendReceipt:
    payload = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
    payload.update(content)
    if quoted_wamid:
        payload["context"] = {"message_id": quoted_wamid}
    try:
        response = http().post(
            _graph(credentials, "messages"),
            json=payload,
            headers=_bearer(credentials),
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


def fetch_media(credentials: CloudCredentials, media: MediaToFetch, destination) -> str:
    """GET /{media-id} → a short-lived URL; GET it with the number's token, streamed into
    `destination` chunk by chunk, refused past `media.max_bytes`. Returns its content type."""
    headers = _bearer(credentials)
    base = settings.WHATSAPP_GRAPH_URL.rstrip("/")
    try:
        response = http().get(
            f"{base}/{media.external_id}", headers=headers, timeout=settings.WHATSAPP_GRAPH_TIMEOUT
        )
        if response.status_code != 200:
            raise DownloadError(_download_refused(response))
        try:
            info = response.json()
            url = str(info["url"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DownloadError("The WhatsApp Cloud API answered without a media URL.") from exc
        declared = info.get("file_size")
        if isinstance(declared, int) and declared > media.max_bytes:
            raise DownloadError(_too_large(declared, media.max_bytes))
        received = 0
        with http().stream(
            "GET", url, headers=headers, timeout=settings.WHATSAPP_GRAPH_TIMEOUT
        ) as stream:
            if stream.status_code != 200:
                stream.read()
                raise DownloadError(_download_refused(stream))
            for chunk in stream.iter_bytes(65536):
                received += len(chunk)
                if received > media.max_bytes:
                    raise DownloadError(_too_large(received, media.max_bytes))
                destination.write(chunk)
    except httpx.HTTPError as exc:
        raise DownloadError(
            f"The WhatsApp Cloud API could not be reached ({exc.__class__.__name__}); try again."
        ) from exc
    return str(info.get("mime_type") or "")


def _download_refused(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = error.get("code")
    if code == 190 or response.status_code == 401:
        return REASONS[190]
    if response.status_code == 404:
        return "WhatsApp no longer has this file (media ids expire after 30 days)."
    return f"WhatsApp refused the download ({code or response.status_code})."


def _too_large(size: int, limit: int) -> str:
    return (
        f"The file is {size / 1048576:.1f} MB, over the {limit / 1048576:.0f} MB we store "
        "(ATTACHMENT_MAX_BYTES)."
    )


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


def _objects(value) -> list[dict]:
    """The JSON objects of a list (anything else in a delivery of an unexpected shape: none)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value) -> str:
    """A string field as we store it: text only, no NUL (PostgreSQL stores none)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return value.replace("\x00", "") if isinstance(value, str) else ""


def parse_webhook(payload) -> tuple[list[InboundMessage], list[StatusUpdate]]:
    """Messages and status updates of one webhook delivery. Whatever has another shape than
    Meta's documented one is skipped (and logged), never an error: Meta re-delivers a webhook
    that did not get a 2xx, for days."""
    messages, statuses = [], []
    for entry in _objects(_object(payload).get("entry")):
        for change in _objects(entry.get("changes")):
            if change.get("field") != "messages":
                continue
            value = _object(change.get("value"))
            names = {
                _text(contact.get("wa_id")): _text(_object(contact.get("profile")).get("name"))
                for contact in _objects(value.get("contacts"))
            }
            for item in _objects(value.get("messages")):
                if parsed := _inbound(item, names):
                    messages.append(parsed)
            for item in _objects(value.get("statuses")):
                if parsed := _status(item):
                    statuses.append(parsed)
    return messages, statuses


def _status(item: dict) -> StatusUpdate | None:
    wamid = _text(item.get("id"))
    if not wamid or len(wamid) > 255:
        logger.warning("cloud webhook: a status without an id skipped")
        return None
    errors = _objects(item.get("errors"))
    error = ""
    if errors:
        code = errors[0].get("code")
        title = _text(errors[0].get("title")) or "Failed"
        error = (REASONS.get(code) if isinstance(code, int) else None) or f"{title} ({_text(code)})"
    return StatusUpdate(
        wamid=wamid,
        status=_text(item.get("status")),
        timestamp=_time(item.get("timestamp")),
        error=error,
    )


def _inbound(item: dict, names: dict) -> InboundMessage | None:
    wamid, wa_id = _text(item.get("id")), _text(item.get("from"))
    if not wamid or len(wamid) > 255 or not (wa_id.isdigit() and len(wa_id) <= 20):
        logger.warning("cloud webhook: a message without a usable id or sender skipped")
        return None
    kind = _text(item.get("type")) or "text"
    media = []
    if kind == "text":
        body = _text(_object(item.get("text")).get("body"))
    elif kind in MEDIA_KINDS:
        part = _object(item.get(kind))
        body = _text(part.get("caption"))
        voice = kind == "audio" and part.get("voice") is True
        media.append(
            AnnouncedMedia(
                kind="voice" if voice else kind,
                media_id=_text(part.get("id")),
                content_type=_text(part.get("mime_type")),
                filename=_text(part.get("filename")),
            )
        )
    elif kind == "button":
        body = _text(_object(item.get("button")).get("text"))
    elif kind == "interactive":
        reply = _object(item.get("interactive"))
        chosen = _object(reply.get("button_reply") or reply.get("list_reply"))
        body = _text(chosen.get("title"))
    elif kind == "location":
        place = _object(item.get("location"))
        latitude, longitude = _text(place.get("latitude")), _text(place.get("longitude"))
        body = f"📍 {_text(place.get('name'))} {latitude},{longitude}"
    else:
        body = f"[{kind[:40]} message]"
    return InboundMessage(
        wamid=wamid,
        wa_id=wa_id,
        name=names.get(wa_id, ""),
        body=body.strip(),
        timestamp=_time(item.get("timestamp")),
        kind=kind,
        quoted_wamid=_text(_object(item.get("context")).get("id")),
        media=media,
    )


def _time(epoch) -> datetime:
    try:
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(tz=UTC)
