"""The Meta Graph API as the two channels use it: the Send API (`POST /{page-id}/messages`),
reading an account for "Test connection", and the webhook's signature and challenge. Plain
data in and out, no ORM. The base URL is `WHATSAPP_GRAPH_URL` (the same Graph API and version
as the WhatsApp Cloud numbers)."""

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.utils.translation import gettext as _

from messaging.channels import (
    DownloadError,
    OutboundFile,
    SendError,
    SendReceipt,
    TransientSendError,
    write_within,
)

logger = logging.getLogger(__name__)

# How our file kinds go out as Send API attachment types.
ATTACHMENT_TYPES = {"image": "image", "video": "video", "audio": "audio", "document": "file"}

# Graph error codes (Meta's Messenger Platform docs) that mean "later".
RATE_LIMIT_CODES = {4, 17, 32, 613}


def _reasons() -> dict[int, str]:
    return {
        190: _("The page access token is invalid or expired: update it in Settings."),
        10: _(
            "Meta refused the message: it is outside the allowed messaging window, or the app "
            "lacks the permission for it."
        ),
        551: _("This person is not available right now (they may have blocked the page)."),
        100: _("Meta refused a parameter of the message (the recipient may be unknown)."),
        200: _("The app lacks the permission to send messages for this page."),
    }


@dataclass(frozen=True)
class MetaRoute:
    """Where a reply goes: the Page that sends it (also for Instagram), and how."""

    page_id: str
    access_token: str
    app_secret: str
    messaging_type: str = "RESPONSE"  # or MESSAGE_TAG
    tag: str = ""  # HUMAN_AGENT with MESSAGE_TAG
    refusal: str = ""  # the window is closed: the send fails with these words


def _base() -> str:
    return settings.WHATSAPP_GRAPH_URL.rstrip("/")


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """HMAC-SHA256 of the token with the app secret: Graph checks it when the app requires it
    (and refuses a wrong one), so the app secret is proven with every call."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def _params(access_token: str, app_secret: str) -> dict:
    return {"appsecret_proof": appsecret_proof(access_token, app_secret)} if app_secret else {}


def _route_problem(route: MetaRoute) -> None:
    if route.refusal:
        raise SendError(route.refusal)
    if not route.page_id or not route.access_token:
        raise SendError(_("This account has no Page id or page access token yet."))


def _post_messages(route: MetaRoute, **request) -> httpx.Response:
    """POST /{page-id}/messages (JSON or multipart): the 200 answer, or SendError (transient
    for network trouble, 5xx and rate limits)."""
    try:
        response = httpx.post(
            f"{_base()}/{route.page_id}/messages",
            params=_params(route.access_token, route.app_secret),
            headers={"Authorization": f"Bearer {route.access_token}"},
            timeout=settings.WHATSAPP_GRAPH_TIMEOUT,
            **request,
        )
    except httpx.HTTPError as exc:
        raise TransientSendError(
            _("The Meta Graph API could not be reached (%(error)s).")
            % {"error": exc.__class__.__name__}
        ) from exc
    if response.status_code != 200:
        raise error_from_response(response)
    return response


def _receipt(response: httpx.Response) -> SendReceipt:
    try:
        return SendReceipt(external_id=str(response.json()["message_id"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise SendError(_("The Meta Graph API answered without a message id.")) from exc


def _how(route: MetaRoute) -> dict:
    """The messaging type (and tag) of a message under the channel's window rule."""
    return {"messaging_type": route.messaging_type, **({"tag": route.tag} if route.tag else {})}


def send_text(route: MetaRoute, recipient_id: str, body: str) -> SendReceipt:
    """A text through the Send API; the message id (`mid`)."""
    _route_problem(route)
    payload = {"recipient": {"id": recipient_id}, "message": {"text": body}, **_how(route)}
    return _receipt(_post_messages(route, json=payload))


def send_file(route: MetaRoute, recipient_id: str, file: OutboundFile) -> SendReceipt:
    """An attachment uploaded with its message (multipart `filedata`, streamed from storage by
    httpx in chunks, never read whole); the message id."""
    _route_problem(route)
    attachment = {"type": ATTACHMENT_TYPES.get(file.kind, "file"), "payload": {}}
    fields = {
        "recipient": json.dumps({"id": recipient_id}),
        "message": json.dumps({"attachment": attachment}),
        **_how(route),
    }
    try:
        with file.open() as handle:
            response = _post_messages(
                route, data=fields, files={"filedata": (file.filename, handle, file.content_type)}
            )
    except FileNotFoundError as exc:
        raise SendError(
            _("The file “%(name)s” is missing from our storage.") % {"name": file.filename}
        ) from exc
    return _receipt(response)


def send_reaction(route: MetaRoute, recipient_id: str, mid: str, reaction: str) -> None:
    """Our reaction on the client's message `mid` (sender action `react`), or its removal
    (`unreact`) when `reaction` is empty. No messaging window: it answers their message."""
    if not route.page_id or not route.access_token:
        raise SendError(_("This account has no Page id or page access token yet."))
    payload = {
        "recipient": {"id": recipient_id},
        "sender_action": "react" if reaction else "unreact",
        "payload": {"message_id": mid, **({"reaction": reaction} if reaction else {})},
    }
    _post_messages(route, json=payload)


# ---------------------------------------------------------------- inbound files and people


def fetch_attachment(url: str, max_bytes: int, destination) -> str:
    """GET an attachment's CDN URL from a webhook (signed in itself: no token), streamed
    into `destination` within `max_bytes`; its content type."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(_("Meta gave no usable address for this file."))
    try:
        with httpx.stream("GET", url, timeout=settings.WHATSAPP_GRAPH_TIMEOUT) as stream:
            if stream.status_code != 200:
                stream.read()
                raise DownloadError(
                    _(
                        "Meta no longer serves this file (HTTP %(status)s): attachment "
                        "addresses expire; ask the client to send it again."
                    )
                    % {"status": stream.status_code}
                )
            write_within(stream.iter_bytes(65536), destination, max_bytes)
            return stream.headers.get("Content-Type", "").split(";")[0].strip()
    except httpx.HTTPError as exc:
        raise DownloadError(
            _("Meta's file server could not be reached (%(error)s); try again.")
            % {"error": exc.__class__.__name__}
        ) from exc


def fetch_profile(user_id: str, fields: str, access_token: str, app_secret: str) -> dict:
    """GET /{user-id}?fields=...: the person's public profile fields ({} when Graph refuses;
    a name is a nicety, never a reason to fail)."""
    profile, problem = _get(user_id, access_token, app_secret, fields)
    if problem:
        logger.info("meta graph: no profile for a client (%s)", problem)
    return profile


def _error_of(response: httpx.Response) -> dict:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def error_from_response(response: httpx.Response) -> SendError:
    error = _error_of(response)
    code = error.get("code")
    logger.warning("meta graph: refused http=%s code=%s", response.status_code, code)
    if code in RATE_LIMIT_CODES:
        return TransientSendError(
            _("Meta rate limit (%(code)s): sending again shortly.") % {"code": code}
        )
    if response.status_code >= 500:
        return TransientSendError(
            _("The Meta Graph API failed (%(status)s).") % {"status": response.status_code}
        )
    reasons = _reasons()
    if code in reasons:
        # 190: the page's token is refused, a failure of the connection (admins are told).
        return SendError(reasons[code], connection=code == 190)
    message = str(error.get("message") or f"HTTP {response.status_code}")[:300]
    return SendError(
        _("Meta refused the message (%(code)s): %(message)s")
        % {"code": code or response.status_code, "message": message}
    )


# ---------------------------------------------------------------- test connection


def _get(path: str, access_token: str, app_secret: str, fields: str) -> tuple[dict, str]:
    """GET a Graph object: (its fields, "") or ({}, what is wrong in words)."""
    try:
        response = httpx.get(
            f"{_base()}/{path}",
            params={"fields": fields, **_params(access_token, app_secret)},
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=settings.WHATSAPP_GRAPH_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        return {}, _("The Meta Graph API could not be reached (%(error)s).") % {
            "error": exc.__class__.__name__
        }
    if response.status_code == 200:
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data, ""
        return {}, _("The Meta Graph API answered with something that is not an object.")
    error = _error_of(response)
    code, message = error.get("code"), str(error.get("message") or "")[:300]
    if code == 190:
        return {}, _("The page access token is invalid or expired (Graph error 190).")
    if "appsecret_proof" in message:
        return {}, _("The app secret does not belong to the token's app (appsecret_proof refused).")
    return {}, _("Graph refused GET /%(path)s (%(code)s): %(message)s") % {
        "path": path.split("?")[0],
        "code": code or response.status_code,
        "message": message,
    }


def check_page(page_id: str, access_token: str, app_secret: str) -> tuple[str, str]:
    """GET /me?fields=id,name with the page token: (the page's name, "") or ("", why not)."""
    if not access_token:
        return "", _("No page access token is stored.")
    page, problem = _get("me", access_token, app_secret, "id,name")
    if problem:
        return "", problem
    if str(page.get("id", "")) != page_id:
        return "", _(
            "The token belongs to %(name)s (id %(id)s), not to the Page id %(page_id)s saved here."
        ) % {"name": page.get("name") or "?", "id": page.get("id") or "?", "page_id": page_id}
    return str(page.get("name") or ""), ""


def check_instagram(ig_user_id: str, access_token: str, app_secret: str) -> tuple[str, str]:
    """GET /{ig-user-id}?fields=username: (the username, "") or ("", why not)."""
    account, problem = _get(ig_user_id, access_token, app_secret, "username")
    if problem:
        return "", problem
    username = str(account.get("username") or "")
    if not username:
        return "", _("Graph answered for %(id)s without an Instagram username.") % {
            "id": ig_user_id
        }
    return username, ""


# ---------------------------------------------------------------- webhooks


def verification_answer(params, verify_token: str) -> str | None:
    """The challenge to echo when Meta verifies the webhook with our token; else None."""
    if (
        params.get("hub.mode") == "subscribe"
        and verify_token
        and hmac.compare_digest(
            str(params.get("hub.verify_token", "")).encode(), verify_token.encode()
        )
    ):
        return params.get("hub.challenge", "")
    return None
