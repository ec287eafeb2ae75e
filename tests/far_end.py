"""The far end of the Meta Graph API, at the wire: the WhatsApp Cloud API and the Messenger
Platform's Send API for Pages and Instagram (`POST /<page-id>/messages`, `GET /me`,
`GET /<ig-user-id>`, appsecret_proof checked where a secret is set; `meta_sent`, `meta_pages`,
`meta_instagram`, `meta_app_secrets`). An HTTP server on loopback that speaks
the Graph API's messages endpoint (POST /<version>/<phone-number-id>/messages, a bearer token,
Meta's JSON answers and error bodies), its media upload (POST /<version>/<phone-number-id>/media,
multipart, read as a stream: `uploads` records each file's name, type, size and SHA-256) and its
media download (GET /<version>/<media-id> → a URL on this server, GET of that URL with the
token → the bytes of `hosted[media_id]`). Meta's servers are unreachable here; everything on our
side (the channel, the send policy, tasks, PostgreSQL, Redis) is the real code.

`GraphFake.sent` lists every message it accepted, in order; `script` holds answers for the
next requests (see `graph_error`, `graph_unavailable`), after which it accepts again.
Templates: `templates` (Meta's objects) are served at GET /<version>/<waba-id>/message_templates
in pages of `template_page_size`, linked by `paging.cursors.after` / `paging.next` as Meta
does; `template_requests` lists each page request. Free text to a recipient in
`closed_windows` is refused with 131047 ("Re-engagement message"), as Meta refuses it outside
the 24-hour window; template sends are accepted for anyone. Used by
the tests (fixture `far_end`) and by bench/outbox.py, also from other processes' workers.
"""

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Sent:
    phone_number_id: str
    to_address: str
    body: str
    quoted: str
    token: str
    template: dict | None = None  # a template send: {"name", "language": {"code"}, ...}
    kind: str = "text"
    media_id: str = ""
    filename: str = ""
    wamid: str = ""


@dataclass(frozen=True)
class Upload:
    media_id: str
    phone_number_id: str
    fields: dict
    filename: str
    content_type: str
    size: int
    sha256: str
    token: str


@dataclass(frozen=True)
class MetaSent:
    """A Messenger/Instagram Send API call the fake accepted (POST /<page-id>/messages)."""

    page_id: str
    recipient_id: str
    body: str
    messaging_type: str
    tag: str
    token: str
    kind: str = "text"  # text, react, unreact, or an attachment type (image, file, ...)
    filename: str = ""
    size: int = 0
    sha256: str = ""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict | str
    delay: float = 0.0


def graph_error(code: int, status: int = 400, message: str = "") -> Answer:
    """A Graph API error answer, as Meta sends it (e.g. 130429 throttled, 131047 window)."""
    return Answer(
        status,
        {
            "error": {
                "message": message or f"(#{code}) error",
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": "AbCdEfGh",
            }
        },
    )


def graph_unavailable() -> Answer:
    return Answer(503, "Service Unavailable")


class GraphFake:
    VERSION = "v21.0"

    def __init__(self):
        self.sent: list[Sent] = []
        self.uploads: list[Upload] = []
        # Inbound media the far end holds, by media id: bytes, or an Answer to give instead.
        self.hosted: dict[str, bytes | Answer] = {}
        self.downloads: list[str] = []  # media ids whose bytes were fetched
        self.requests = 0
        self.script: list[Answer] = []
        self.accept_delay = 0.0  # seconds an accepted message waits before the answer
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        # Messenger Platform (Pages and Instagram): token -> (page id, page name); Instagram
        # account id -> username; token -> app secret whose appsecret_proof Graph requires.
        self.meta_sent: list[MetaSent] = []
        self.meta_pages: dict[str, tuple[str, str]] = {}
        self.meta_instagram: dict[str, str] = {}
        self.meta_app_secrets: dict[str, str] = {}
        # Meta's CDN (attachment URLs in webhooks): name -> bytes; user id -> profile fields.
        self.meta_cdn: dict[str, bytes] = {}
        self.meta_profiles: dict[str, dict] = {}
        self.templates: list[dict] = []
        self.template_page_size = 2
        self.template_requests: list[dict] = []
        self.closed_windows: set[str] = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 (http.server's name)
                authorization = self.headers.get("Authorization", "")
                if fake.serves_media(self.path, authorization):
                    status, body = fake.serve_media(self.path, authorization)
                else:
                    status, body = fake.answer_get(self.path, authorization)
                self._reply(status, body)

            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                authorization = self.headers.get("Authorization", "")
                if self.path.rstrip("/").endswith("/media"):
                    status, body = fake.receive_media(
                        self.path, authorization, self.headers, self.rfile, length
                    )
                elif self.headers.get("Content-Type", "").startswith("multipart/form-data"):
                    status, body = fake.receive_meta_file(
                        self.path, authorization, self.headers, self.rfile, length
                    )
                else:
                    raw = self.rfile.read(length)
                    status, body = fake.answer(self.path, authorization, raw)
                self._reply(status, body)

            def _reply(self, status, body):
                if isinstance(body, bytes):
                    data, kind = body, "application/octet-stream"
                else:
                    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                    kind = "application/json"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """What WHATSAPP_GRAPH_URL is set to."""
        return f"http://127.0.0.1:{self.port}/{self.VERSION}"

    def start(self) -> "GraphFake":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        with self.lock:
            self.sent.clear()
            self.uploads.clear()
            self.hosted.clear()
            self.downloads.clear()
            self.script.clear()
            self.requests = 0
            self.accept_delay = 0.0
            self.meta_sent.clear()
            self.meta_pages.clear()
            self.meta_instagram.clear()
            self.meta_app_secrets.clear()
            self.meta_cdn.clear()
            self.meta_profiles.clear()
            self.templates = []
            self.template_page_size = 2
            self.template_requests.clear()
            self.closed_windows.clear()

    # ------------------------------------------------------------ Messenger Platform

    def _meta_refusal(self, token: str, query: dict) -> tuple[int, dict] | None:
        """Graph's answer to a bad token or appsecret_proof (None: both good)."""
        if token not in self.meta_pages:
            return 400, {
                "error": {
                    "message": "Invalid OAuth access token - Cannot parse access token",
                    "type": "OAuthException",
                    "code": 190,
                    "fbtrace_id": "AbCdEfGh",
                }
            }
        secret = self.meta_app_secrets.get(token)
        if secret is not None:
            proof = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if query.get("appsecret_proof", [""])[0] != proof:
                return 400, {
                    "error": {
                        "message": "Invalid appsecret_proof provided in the API argument",
                        "type": "GraphMethodException",
                        "code": 100,
                    }
                }
        return None

    def answer_get(self, path: str, authorization: str) -> tuple[int, dict]:
        """GET /<version>/me?fields=id,name and GET /<version>/<ig-user-id>?fields=username."""
        url = urlsplit(path)
        query = parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        token = authorization.removeprefix("Bearer ")
        if len(parts) == 3 and parts[0] == self.VERSION and parts[2] == "message_templates":
            return self._answer_templates(path, authorization)
        if len(parts) != 2 or parts[0] != self.VERSION:
            return 404, {"error": {"message": "Unknown path", "code": 100}}
        with self.lock:
            self.requests += 1
        if refusal := self._meta_refusal(token, query):
            return refusal
        page_id, name = self.meta_pages[token]
        if parts[1] == "me":
            return 200, {"id": page_id, "name": name}
        if parts[1] in self.meta_instagram:
            return 200, {"id": parts[1], "username": self.meta_instagram[parts[1]]}
        if parts[1] in self.meta_profiles:
            wanted = [name for name in query.get("fields", [""])[0].split(",") if name]
            profile = self.meta_profiles[parts[1]]
            return 200, {"id": parts[1], **{k: v for k, v in profile.items() if k in wanted}}
        return 400, {
            "error": {
                "message": f"Unsupported get request. Object with ID '{parts[1]}' does not exist",
                "type": "GraphMethodException",
                "code": 100,
                "error_subcode": 33,
            }
        }

    def _answer_meta(self, page_id: str, token: str, query: dict, payload) -> tuple[int, dict]:
        """POST /<version>/<page-id>/messages, the Send API (Messenger and Instagram): a text,
        an uploaded file (`file`: its name, size and SHA-256), or a sender action
        (react/unreact, recorded with the reaction as its body)."""
        file = payload.pop("_file", None)
        try:
            recipient = payload["recipient"]["id"]
            action = payload.get("sender_action", "")
            if action in ("react", "unreact"):
                target = payload["payload"]["message_id"]
                body = f"{payload['payload'].get('reaction', '')}@{target}"
                kind, messaging_type = action, ""
            elif file is not None:
                kind = payload["message"]["attachment"]["type"]
                body, messaging_type = "", payload["messaging_type"]
            else:
                body, kind = payload["message"]["text"], "text"
                messaging_type = payload["messaging_type"]
        except (KeyError, TypeError):
            return 400, {"error": {"message": "(#100) Invalid parameter", "code": 100}}
        if refusal := self._meta_refusal(token, query):
            return refusal
        if self.meta_pages[token][0] != page_id:
            return 400, {"error": {"message": "(#200) Not the token's page", "code": 200}}
        with self.lock:
            self.requests += 1
            scripted = self.script.pop(0) if self.script else None
        if scripted is not None:
            time.sleep(scripted.delay)
            return scripted.status, scripted.body
        mid = f"m_fake{next(self._ids)}"
        with self.lock:
            self.meta_sent.append(
                MetaSent(
                    page_id,
                    recipient,
                    body,
                    messaging_type,
                    payload.get("tag", ""),
                    token,
                    kind=kind,
                    filename=(file or {}).get("filename", ""),
                    size=(file or {}).get("size", 0),
                    sha256=(file or {}).get("sha256", ""),
                )
            )
        if kind in ("react", "unreact"):
            return 200, {"recipient_id": recipient}
        return 200, {"recipient_id": recipient, "message_id": mid}

    def receive_meta_file(self, path, authorization, headers, stream, length):
        """POST /<version>/<page-id>/messages as multipart (an attachment upload with the
        message): `recipient` and `message` JSON fields plus `filedata`, read as a stream."""
        url = urlsplit(path)
        parts = url.path.strip("/").split("/")
        boundary = headers.get("Content-Type", "").partition("boundary=")[2].strip('"').encode()
        if len(parts) != 3 or parts[2] != "messages" or not boundary:
            stream.read(length)
            return 404, {"error": {"message": "Unknown path", "code": 100}}
        fields, files = _read_multipart(stream, length, boundary)
        try:
            payload = {
                "recipient": json.loads(fields["recipient"]),
                "message": json.loads(fields["message"]),
                "messaging_type": fields.get("messaging_type", ""),
                "_file": files["filedata"],
            }
            if fields.get("tag"):
                payload["tag"] = fields["tag"]
        except (KeyError, ValueError):
            return 400, {"error": {"message": "(#100) Param filedata is required", "code": 100}}
        token = authorization.removeprefix("Bearer ")
        return self._answer_meta(parts[1], token, parse_qs(url.query), payload)

    def _answer_templates(self, path: str, authorization: str) -> tuple[int, dict | str]:
        """GET /<version>/<waba-id>/message_templates?fields=...&limit=...&after=..."""
        url = urlsplit(path)
        parts = url.path.strip("/").split("/")
        if not authorization.startswith("Bearer ") or len(authorization) < 10:
            return 401, {"error": {"message": "Invalid OAuth access token.", "code": 190}}
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        with self.lock:
            self.template_requests.append({"waba_id": parts[1], **query})
            scripted = self.script.pop(0) if self.script else None
            templates = list(self.templates)
        if scripted is not None:
            return scripted.status, scripted.body
        try:
            limit = min(int(query.get("limit", 25)), self.template_page_size)
            start = int(query.get("after", "0").removeprefix("cursor-") or 0)
        except ValueError:
            return 400, {"error": {"message": "(#100) Invalid parameter", "code": 100}}
        wanted = [name for name in query.get("fields", "").split(",") if name]
        page = [
            {
                key: value
                for key, value in item.items()
                if not wanted or key in wanted or key == "id"
            }
            for item in templates[start : start + limit]
        ]
        end = start + limit
        paging = {"cursors": {"before": f"cursor-{start}", "after": f"cursor-{end}"}}
        if end < len(templates):
            paging["next"] = f"{self.url}/{parts[1]}/message_templates?after=cursor-{end}"
        return 200, {"data": page, "paging": paging}

    # ------------------------------------------------------------ WhatsApp Cloud API

    def answer(self, path: str, authorization: str, raw: bytes) -> tuple[int, dict | str]:
        url = urlsplit(path)
        parts = url.path.strip("/").split("/")
        if len(parts) == 3 and parts[2] == "messages":
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and "recipient" in payload:
                token = authorization.removeprefix("Bearer ")
                return self._answer_meta(parts[1], token, parse_qs(url.query), payload)
        if len(parts) != 3 or parts[0] != self.VERSION or parts[2] != "messages":
            return 404, {"error": {"message": "Unknown path", "code": 100}}
        if not authorization.startswith("Bearer ") or len(authorization) < 10:
            return 401, {"error": {"message": "Invalid OAuth access token.", "code": 190}}
        try:
            payload = json.loads(raw)
            to = payload["to"]
            template = payload["template"] if payload.get("type") == "template" else None
            if payload.get("type") == "reaction":  # recorded as body "reaction:<emoji>"
                reaction = payload["reaction"]
                body = f"reaction:{reaction['emoji']}"
                payload["context"] = {"message_id": reaction["message_id"]}
            elif template is not None:
                body = template["name"]
                if not template["language"]["code"]:
                    raise ValueError("no language")
            elif payload.get("type", "text") == "text":
                body = payload["text"]["body"]
            kind, media_id, filename = payload.get("type", "text"), "", ""
            if kind not in ("text", "reaction", "template"):
                part = payload[kind]
                body, media_id = part.get("caption", ""), part["id"]
                filename = part.get("filename", "")
                if media_id not in {upload.media_id for upload in self.uploads}:
                    return 400, {"error": {"message": "(#100) Invalid media id", "code": 100}}
        except (ValueError, KeyError, TypeError):
            return 400, {"error": {"message": "(#100) Invalid parameter", "code": 100}}
        with self.lock:
            self.requests += 1
            scripted = self.script.pop(0) if self.script else None
            closed = template is None and to in self.closed_windows
        if scripted is not None:
            time.sleep(scripted.delay)
            return scripted.status, scripted.body
        if closed:
            refusal = graph_error(131047, message="(#131047) Re-engagement message")
            return refusal.status, refusal.body
        wamid = f"wamid.fake.{next(self._ids)}"
        with self.lock:
            self.sent.append(
                Sent(
                    phone_number_id=parts[1],
                    to_address=to,
                    body=body,
                    quoted=(payload.get("context") or {}).get("message_id", ""),
                    token=authorization.removeprefix("Bearer "),
                    template=template,
                    kind=kind,
                    media_id=media_id,
                    filename=filename,
                    wamid=wamid,
                )
            )
        # Accepted, not yet answered: a sender killed now cannot know the message went out.
        time.sleep(self.accept_delay)
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
            "messages": [{"id": wamid}],
        }

    # ------------------------------------------------------------ media

    def receive_media(self, path, authorization, headers, stream, length):
        """POST /<version>/<phone-number-id>/media: a multipart body read in 64 KB chunks (a
        file is hashed and counted, never held), Meta's `{"id": ...}` answer."""
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != self.VERSION:
            return 404, {"error": {"message": "Unknown path", "code": 100}}
        if not authorization.startswith("Bearer ") or len(authorization) < 10:
            stream.read(length)
            return 401, {"error": {"message": "Invalid OAuth access token.", "code": 190}}
        content_type = headers.get("Content-Type", "")
        boundary = content_type.partition("boundary=")[2].strip('"').encode()
        if not content_type.startswith("multipart/form-data") or not boundary:
            stream.read(length)
            return 400, {"error": {"message": "(#100) Expected multipart", "code": 100}}
        fields, files = _read_multipart(stream, length, boundary)
        with self.lock:
            self.requests += 1
            scripted = self.script.pop(0) if self.script else None
        if scripted is not None:
            time.sleep(scripted.delay)
            return scripted.status, scripted.body
        if fields.get("messaging_product") != "whatsapp" or "file" not in files:
            return 400, {"error": {"message": "(#100) Param file is required", "code": 100}}
        media_id = f"{9000000000000 + next(self._ids)}"
        upload = files["file"]
        with self.lock:
            self.uploads.append(
                Upload(
                    media_id=media_id,
                    phone_number_id=parts[1],
                    fields=fields,
                    filename=upload["filename"],
                    content_type=upload["content_type"],
                    size=upload["size"],
                    sha256=upload["sha256"],
                    token=authorization.removeprefix("Bearer "),
                )
            )
        return 200, {"id": media_id}

    def serves_media(self, path: str, authorization: str) -> bool:
        """Whether a GET is for WhatsApp media (GET /<version>/<media-id>, or the download
        URL) rather than a Messenger Platform look-up (a Page's token) or the templates."""
        parts = urlsplit(path).path.strip("/").split("/")
        if parts and parts[0] in ("whatsapp_business", "meta_cdn"):
            return True
        if len(parts) != 2 or parts[0] != self.VERSION or parts[1] == "me":
            return False
        return authorization.removeprefix("Bearer ") not in self.meta_pages

    def cdn_url(self, name: str) -> str:
        """A Messenger/Instagram attachment URL on this server (Meta's CDN URLs are signed
        in themselves: no token), serving `meta_cdn[name]`."""
        return f"http://127.0.0.1:{self.port}/meta_cdn/{name}?oh=signed"

    def serve_media(self, path, authorization):
        """GET /<version>/<media-id>: the media's URL (on this server); GET of that URL with
        the token: its bytes (`hosted`). GET /meta_cdn/<name>: `meta_cdn[name]`, no token."""
        cdn = urlsplit(path).path.strip("/").split("/")
        if cdn[0] == "meta_cdn":
            content = self.meta_cdn.get(cdn[-1])
            if content is None:
                return 404, {"error": {"message": "URL signature expired", "code": 100}}
            with self.lock:
                self.downloads.append(cdn[-1])
            return 200, content
        if not authorization.startswith("Bearer ") or len(authorization) < 10:
            return 401, {"error": {"message": "Invalid OAuth access token.", "code": 190}}
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == self.VERSION:
            media_id = parts[1]
            hosted = self.hosted.get(media_id)
            if isinstance(hosted, Answer):
                return hosted.status, hosted.body
            if hosted is None:
                return 404, {"error": {"message": "(#100) Unknown media", "code": 100}}
            return 200, {
                "messaging_product": "whatsapp",
                "url": f"http://127.0.0.1:{self.port}/whatsapp_business/attachments/?mid={media_id}",
                "mime_type": "application/octet-stream",
                "sha256": hashlib.sha256(hosted).hexdigest(),
                "file_size": len(hosted),
                "id": media_id,
            }
        if parts and parts[0] == "whatsapp_business" and "mid=" in path:
            media_id = path.partition("mid=")[2]
            hosted = self.hosted.get(media_id)
            if not isinstance(hosted, bytes):
                return 404, {"error": {"message": "Not found", "code": 100}}
            with self.lock:
                self.downloads.append(media_id)
            return 200, hosted
        return 404, {"error": {"message": "Unknown path", "code": 100}}


def _read_multipart(stream, length: int, boundary: bytes) -> tuple[dict, dict]:
    """Fields (small values, as text) and files (name, type, size, SHA-256) of a multipart
    body, read from `stream` in 64 KB chunks: memory stays flat whatever the file's size."""
    delimiter = b"\r\n--" + boundary
    buffer = b"\r\n"  # the first delimiter has no CRLF before it
    remaining = length
    fields, files = {}, {}
    state, headers, value, digest, size = "preamble", {}, b"", None, 0

    def fill() -> bool:
        nonlocal buffer, remaining
        if remaining <= 0:
            return False
        chunk = stream.read(min(65536, remaining))
        remaining -= len(chunk)
        buffer += chunk
        return bool(chunk)

    while True:
        if state in ("preamble", "data"):
            at = buffer.find(delimiter)
            if at < 0:
                keep = len(delimiter)
                data, buffer = buffer[:-keep], buffer[-keep:]
                if state == "data":
                    if digest is not None:
                        digest.update(data)
                        size += len(data)
                    else:
                        value += data
                if not fill():
                    break
                continue
            data, buffer = buffer[:at], buffer[at + len(delimiter) :]
            if state == "data":
                name = headers.get("name", "")
                if digest is not None:
                    digest.update(data)
                    size += len(data)
                    files[name] = {
                        "filename": headers.get("filename", ""),
                        "content_type": headers.get("content-type", ""),
                        "size": size,
                        "sha256": digest.hexdigest(),
                    }
                else:
                    fields[name] = (value + data).decode("utf-8", "replace")
            while len(buffer) < 2 and fill():
                pass
            if buffer.startswith(b"--"):
                break
            state = "headers"
        if state == "headers":
            while b"\r\n\r\n" not in buffer:
                if not fill():
                    return fields, files
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            headers = {}
            for line in head.decode("utf-8", "replace").split("\r\n"):
                key, _colon, rest = line.partition(":")
                if key.lower() == "content-disposition":
                    for item in rest.split(";")[1:]:
                        k, _eq, v = item.strip().partition("=")
                        headers[k] = v.strip('"')
                elif key:
                    headers[key.lower()] = rest.strip()
            digest = hashlib.sha256() if "filename" in headers else None
            value, size, state = b"", 0, "data"
    while remaining > 0 and fill():  # drain what is left
        buffer = b""
    return fields, files
