"""The WhatsApp Business Cloud API: sending through the Graph API's messages endpoint, and
reading its webhooks (signature, verification challenge, messages and statuses).

Plain data in and out, no ORM: the webhook view and the send task map it onto our rows.
"""

import hmac
import json
import logging
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from django.conf import settings
from django.core.cache import cache

from messaging import rich
from messaging.channels import (
    DownloadError,
    MediaToFetch,
    OutboundFile,
    SendError,
    SendReceipt,
    TemplatePart,
    TransientSendError,
    write_within,
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
    content: dict | None = None  # typed content (messaging.rich): location, contacts, ...
    raw: dict = field(default_factory=dict)  # the message object as it came (NUL-free)


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
    content = {"type": "text", "text": {"preview_url": False, "body": body}}
    return _post_message(credentials, to, content, quoted_wamid)


def send_reaction(credentials: CloudCredentials, to: str, wamid: str, emoji: str) -> SendReceipt:
    """Our reaction on the customer's message `wamid` (Graph `type: reaction`); an empty
    emoji removes it."""
    content = {"type": "reaction", "reaction": {"message_id": wamid, "emoji": emoji}}
    return _post_message(credentials, to, content, "")


def send_template(credentials: CloudCredentials, to: str, template: TemplatePart) -> SendReceipt:
    """POST a template message: {type: template, template: {name, language: {code},
    components: [{type: body, parameters: [{type: text, text}]}]}}."""
    components = [
        {
            "type": component.type,
            "parameters": [{"type": "text", "text": value} for value in component.parameters],
        }
        for component in template.components
        if component.parameters
    ]
    if template.header is not None:  # a media header: the file, uploaded (cached 25 days)
        kind = template.header.kind
        media = {"id": uploaded_media_id(credentials, template.header)}
        if kind == "document":
            media["filename"] = template.header.filename
        components = [c for c in components if c["type"] != "header"]
        components.insert(0, {"type": "header", "parameters": [{"type": kind, kind: media}]})
    body = {"name": template.name, "language": {"code": template.language}}
    if components:
        body["components"] = components
    return _post_message(credentials, to, {"type": "template", "template": body}, "")


# ---------------------------------------------------------------- templates

TEMPLATE_FIELDS = "name,language,status,category,components"
TEMPLATE_PAGE_SIZE = 100
TEMPLATE_MAX_PAGES = 100  # 10,000 templates: far above Meta's limit per account


class TemplateFetchError(Exception):
    """The templates could not be read; `reason` says why, for the admin."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def fetch_templates(access_token: str, business_account_id: str) -> list[dict]:
    """Every message template of the business account: GET /{waba-id}/message_templates,
    following `paging.cursors.after` while Meta says there is a next page."""
    url = f"{settings.WHATSAPP_GRAPH_URL.rstrip('/')}/{business_account_id}/message_templates"
    params = {"fields": TEMPLATE_FIELDS, "limit": TEMPLATE_PAGE_SIZE}
    headers = {"Authorization": f"Bearer {access_token}"}
    templates: list[dict] = []
    for _page in range(TEMPLATE_MAX_PAGES):
        try:
            response = httpx.get(
                url, params=params, headers=headers, timeout=settings.WHATSAPP_GRAPH_TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise TemplateFetchError(
                f"The WhatsApp Cloud API could not be reached ({exc.__class__.__name__})."
            ) from exc
        if response.status_code != 200:
            raise TemplateFetchError(error_from_response(response).reason)
        try:
            page = response.json()
        except ValueError as exc:
            raise TemplateFetchError("The WhatsApp Cloud API answered with no JSON.") from exc
        templates.extend(_objects(_object(page).get("data")))
        paging = _object(_object(page).get("paging"))
        after = _text(_object(paging.get("cursors")).get("after"))
        if not paging.get("next") or not after:
            return templates
        params = {**params, "after": after}
    logger.warning("cloud api: template paging stopped after %d pages", TEMPLATE_MAX_PAGES)
    return templates


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


MEDIA_ID_CACHE_SECONDS = 25 * 24 * 3600  # Meta keeps uploaded media 30 days


def uploaded_media_id(credentials: CloudCredentials, file: OutboundFile) -> str:
    """A stored file's media id on this number, uploaded once and reused (a template header
    goes with every recipient of a broadcast: one upload, not one per recipient)."""
    key = f"cloud-media:{credentials.phone_number_id}:{file.storage_name}:{file.size}"
    media_id = cache.get(key)
    if not media_id:
        media_id = upload_media(credentials, file)
        cache.set(key, media_id, MEDIA_ID_CACHE_SECONDS)
    return media_id


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
            raise DownloadError.too_large(declared, media.max_bytes)
        with http().stream(
            "GET", url, headers=headers, timeout=settings.WHATSAPP_GRAPH_TIMEOUT
        ) as stream:
            if stream.status_code != 200:
                stream.read()
                raise DownloadError(_download_refused(stream))
            write_within(stream.iter_bytes(65536), destination, media.max_bytes)
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
    if code == 190 or response.status_code == 401:  # the token: the number's connection
        return SendError(REASONS[190], connection=True)
    if code in REASONS:
        return SendError(REASONS[code])
    return SendError(f"WhatsApp refused the message ({code or response.status_code}): {message}")


# ---------------------------------------------------------------- webhooks


def verification_answer(params, verify_token: str) -> str | None:
    """The challenge to echo when Meta verifies the webhook with our token; else None."""
    if (
        params.get("hub.mode") == "subscribe"
        and verify_token
        and hmac.compare_digest(params.get("hub.verify_token", "").encode(), verify_token.encode())
    ):
        return params.get("hub.challenge", "")
    return None


MEDIA_KINDS = {"image", "video", "audio", "document", "sticker"}
RAW_MAX_CHARS = 20_000  # a message's raw payload kept in its metadata up to this size (JSON)


@dataclass(frozen=True)
class Reaction:
    """The customer reacted to one of the thread's messages; an empty emoji removes it."""

    wa_id: str
    target_wamid: str
    emoji: str


@dataclass(frozen=True)
class Edit:
    """The customer edited a message they sent: its new text (caption) replaces the old."""

    wa_id: str
    original_wamid: str
    body: str


@dataclass(frozen=True)
class Revoke:
    """The customer deleted a message they sent ("delete for everyone")."""

    wa_id: str
    original_wamid: str


@dataclass
class Delivery:
    """What one webhook delivery holds, for this number; `foreign` counts changes addressed to
    another phone number id of the same app (ignored), `skipped` what could not be read."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    revokes: list[Revoke] = field(default_factory=list)
    foreign: int = 0
    skipped: int = 0

    @property
    def usable(self) -> int:
        return sum(
            map(len, (self.messages, self.statuses, self.reactions, self.edits, self.revokes))
        )


def _objects(value) -> list[dict]:
    """The JSON objects of a list (anything else in a delivery of an unexpected shape: none)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value, limit: int = 4096) -> str:
    """A string field as we store it: text only, no NUL (PostgreSQL stores none), bounded."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return value.replace("\x00", "")[:limit] if isinstance(value, str) else ""


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def clean_json(value, depth: int = 0):
    """A JSON value as PostgreSQL's jsonb stores it: no NUL in any string, no deeper than 20."""
    if depth > 20:
        return None
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {clean_json(str(key)): clean_json(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_json(item, depth + 1) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return str(value)  # beyond what JSON numbers keep exactly
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def keep_raw(item: dict) -> dict:
    """The raw message kept with what we stored (metadata "raw"), or a note when too big."""
    cleaned = clean_json(item)
    if len(json.dumps(cleaned, ensure_ascii=False)) > RAW_MAX_CHARS:
        return {"truncated": True, "type": _text(item.get("type"), 40)}
    return cleaned


def parse_webhook(payload, phone_number_id: str = "") -> Delivery:
    """Everything one webhook delivery holds for the number `phone_number_id`. Whatever has
    another shape than Meta's documented one is skipped (and counted), never an error: Meta
    re-delivers a webhook that did not get a 2xx, for days. A change whose
    `metadata.phone_number_id` is another number's (one app serves several numbers) is not
    ours: counted as foreign, nothing of it read."""
    delivery = Delivery()
    for entry in _objects(_object(payload).get("entry")):
        for change in _objects(entry.get("changes")):
            if change.get("field") != "messages":
                continue
            value = _object(change.get("value"))
            addressed = _text(_object(value.get("metadata")).get("phone_number_id"), 64)
            if phone_number_id and addressed != phone_number_id:
                delivery.foreign += 1
                continue
            names = {
                _text(contact.get("wa_id"), 32): _text(
                    _object(contact.get("profile")).get("name"), 200
                )
                for contact in _objects(value.get("contacts"))
            }
            for item in _objects(value.get("messages")):
                _read_message(item, names, delivery)
            for item in _objects(value.get("statuses")):
                if parsed := _status(item):
                    delivery.statuses.append(parsed)
                else:
                    delivery.skipped += 1
    return delivery


def _status(item: dict) -> StatusUpdate | None:
    wamid = _text(item.get("id"), 1000)
    if not wamid or len(wamid) > 255:
        logger.warning("cloud webhook: a status without an id skipped")
        return None
    errors = _objects(item.get("errors"))
    error = ""
    if errors:
        code = errors[0].get("code")
        title = _text(errors[0].get("title"), 200) or "Failed"
        error = (REASONS.get(code) if isinstance(code, int) else None) or f"{title} ({_text(code)})"
    return StatusUpdate(
        wamid=wamid,
        status=_text(item.get("status"), 20),
        timestamp=_time(item.get("timestamp")),
        error=error,
    )


def _read_message(item: dict, names: dict, delivery: Delivery) -> None:
    wamid, wa_id = _text(item.get("id"), 1000), _text(item.get("from"), 100)
    if not (wa_id.isdigit() and len(wa_id) <= 20):
        logger.warning("cloud webhook: a message without a usable sender skipped")
        delivery.skipped += 1
        return
    kind = _text(item.get("type"), 40) or "text"
    if kind == "reaction":
        part = _object(item.get("reaction"))
        target = _text(part.get("message_id"), 1000)
        if not target or len(target) > 255:
            delivery.skipped += 1
            return
        delivery.reactions.append(Reaction(wa_id, target, _text(part.get("emoji"), 32).strip()))
        return
    if kind in ("edit", "revoke"):
        part = _object(item.get(kind))
        original = _text(part.get("original_message_id"), 1000)
        if not original or len(original) > 255:
            delivery.skipped += 1
            return
        if kind == "revoke":
            delivery.revokes.append(Revoke(wa_id, original))
        else:
            body, *_rest = _content(_object(part.get("message")))
            delivery.edits.append(Edit(wa_id, original, body))
        return
    if not wamid or len(wamid) > 255:
        logger.warning("cloud webhook: a message without a usable id skipped")
        delivery.skipped += 1
        return
    body, content, media = _content(item)
    delivery.messages.append(
        InboundMessage(
            wamid=wamid,
            wa_id=wa_id,
            name=names.get(wa_id, ""),
            body=body.strip(),
            timestamp=_time(item.get("timestamp")),
            kind=kind,
            quoted_wamid=_text(_object(item.get("context")).get("id"), 255),
            media=media,
            content=content,
            raw=keep_raw(item),
        )
    )


def _content(item: dict) -> tuple[str, dict | None, list[AnnouncedMedia]]:
    """(the text to store as the body, the typed content shown as what it is, the media) of
    one message object (also the new version inside an edit)."""
    kind = _text(item.get("type"), 40) or "text"
    media: list[AnnouncedMedia] = []
    content = None
    if kind == "text":
        return _text(_object(item.get("text")).get("body")), None, media
    if kind in MEDIA_KINDS:
        part = _object(item.get(kind))
        voice = kind == "audio" and part.get("voice") is True
        media.append(
            AnnouncedMedia(
                kind="voice" if voice else kind,
                media_id=_text(part.get("id"), 255),
                content_type=_text(part.get("mime_type"), 255),
                filename=_text(part.get("filename"), 255),
            )
        )
        return _text(part.get("caption")), None, media
    if kind == "button":  # a template's quick-reply button
        part = _object(item.get("button"))
        content = {"kind": "choice", "title": _text(part.get("text"), 200)}
        content["payload"] = _text(part.get("payload"), 256)
    elif kind == "interactive":
        content = _interactive(_object(item.get("interactive")))
    elif kind == "location":
        content = _location(_object(item.get("location")))
    elif kind == "contacts":
        content = _contacts(item.get("contacts"))
    elif kind == "order":
        content = _order(_object(item.get("order")))
    elif kind == "system":
        part = _object(item.get("system"))
        content = {
            "kind": "notice",
            "text": _text(part.get("body"), 1000),
            "type": _text(part.get("type"), 60),
        }
    if content is None:
        errors = _objects(item.get("errors"))
        detail = _text(_object(errors[0].get("error_data")).get("details"), 300) if errors else ""
        named = _text(_object(item.get("unsupported")).get("type"), 40)
        content = {"kind": "unsupported", "type": named or kind, "detail": detail}
    return rich.describe(content), content, media


def _interactive(part: dict) -> dict | None:
    subtype = _text(part.get("type"), 40)
    if subtype in ("button_reply", "list_reply"):
        chosen = _object(part.get(subtype))
        title = _text(chosen.get("title"), 200)
        if not title:
            return None
        return {
            "kind": "choice",
            "title": title,
            "description": _text(chosen.get("description"), 300),
            "payload": _text(chosen.get("id"), 256),
        }
    if subtype == "nfm_reply":
        reply = _object(part.get("nfm_reply"))
        try:
            answers = json.loads(_text(reply.get("response_json"), 20_000) or "{}")
        except (ValueError, RecursionError):
            answers = {}
        fields = [
            [
                _text(key, 100),
                _text(value, 500)
                if not isinstance(value, dict | list)
                else _text(json.dumps(clean_json(value), ensure_ascii=False), 500),
            ]
            for key, value in list(_object(answers).items())[:50]
            if key != "flow_token"
        ]
        return {
            "kind": "form",
            "name": _text(reply.get("name"), 100),
            "text": _text(reply.get("body"), 500),
            "fields": fields,
        }
    return None


def _location(place: dict) -> dict | None:
    latitude, longitude = _number(place.get("latitude")), _number(place.get("longitude"))
    if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
        return None
    return {
        "kind": "location",
        "latitude": latitude,
        "longitude": longitude,
        "name": _text(place.get("name"), 200),
        "address": _text(place.get("address"), 500),
    }


def _contacts(cards) -> dict | None:
    people = []
    for card in _objects(cards)[:20]:
        name = _object(card.get("name"))
        full = _text(name.get("formatted_name"), 200) or " ".join(
            filter(None, (_text(name.get("first_name"), 100), _text(name.get("last_name"), 100)))
        )
        phones = [_text(p.get("phone"), 40) for p in _objects(card.get("phones"))[:10]]
        emails = [_text(e.get("email"), 254) for e in _objects(card.get("emails"))[:10]]
        people.append(
            {"name": full, "phones": [p for p in phones if p], "emails": [e for e in emails if e]}
        )
    return {"kind": "contacts", "contacts": people} if people else None


def _order(order: dict) -> dict | None:
    items, total, currencies = [], 0.0, set()
    for product in _objects(order.get("product_items"))[:100]:
        quantity, price = _number(product.get("quantity")), _number(product.get("item_price"))
        currency = _text(product.get("currency"), 10)
        items.append(
            {
                "product": _text(product.get("product_retailer_id"), 200),
                "quantity": quantity,
                "price": price,
                "currency": currency,
            }
        )
        if quantity is not None and price is not None:
            total += quantity * price
        currencies.add(currency)
    if not items:
        return None
    return {
        "kind": "order",
        "catalog_id": _text(order.get("catalog_id"), 100),
        "text": _text(order.get("text"), 1000),
        "items": items,
        "total": round(total, 2) if len(currencies) == 1 else None,
        "currency": currencies.pop() if len(currencies) == 1 else "",
    }


def _time(epoch) -> datetime:
    try:
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(tz=UTC)
