"""The far end of the Meta Graph API, at the wire: the WhatsApp Cloud API and the Messenger
Platform's Send API for Pages and Instagram (`POST /<page-id>/messages`, `GET /me`,
`GET /<ig-user-id>`, appsecret_proof checked where a secret is set; `meta_sent`, `meta_pages`,
`meta_instagram`, `meta_app_secrets`). An HTTP server on loopback that speaks
the Graph API's messages endpoint (POST /<version>/<phone-number-id>/messages, a bearer token,
Meta's JSON answers and error bodies). Meta's servers are unreachable here; everything on our
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


@dataclass(frozen=True)
class MetaSent:
    """A Messenger/Instagram Send API call the fake accepted (POST /<page-id>/messages)."""

    page_id: str
    recipient_id: str
    body: str
    messaging_type: str
    tag: str
    token: str


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
        self.templates: list[dict] = []
        self.template_page_size = 2
        self.template_requests: list[dict] = []
        self.closed_windows: set[str] = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 (http.server's name)
                status, body = fake.answer_get(self.path, self.headers.get("Authorization", ""))
                self._reply(status, body)

            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, body = fake.answer(self.path, self.headers.get("Authorization", ""), raw)
                self._reply(status, body)

            def _reply(self, status, body):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
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
            self.script.clear()
            self.requests = 0
            self.accept_delay = 0.0
            self.meta_sent.clear()
            self.meta_pages.clear()
            self.meta_instagram.clear()
            self.meta_app_secrets.clear()
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
        return 400, {
            "error": {
                "message": f"Unsupported get request. Object with ID '{parts[1]}' does not exist",
                "type": "GraphMethodException",
                "code": 100,
                "error_subcode": 33,
            }
        }

    def _answer_meta(self, page_id: str, token: str, query: dict, payload) -> tuple[int, dict]:
        """POST /<version>/<page-id>/messages, the Send API (Messenger and Instagram)."""
        try:
            recipient = payload["recipient"]["id"]
            body = payload["message"]["text"]
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
                MetaSent(page_id, recipient, body, messaging_type, payload.get("tag", ""), token)
            )
        return 200, {"recipient_id": recipient, "message_id": mid}

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
            else:
                body = payload["text"]["body"]
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
                )
            )
        # Accepted, not yet answered: a sender killed now cannot know the message went out.
        time.sleep(self.accept_delay)
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
            "messages": [{"id": wamid}],
        }
