"""Reading one raw email (the standard library's `email` package, modern policy) into plain
data. It never raises: whatever cannot be read is left out and the mail is flagged
`malformed`, so one bad message never stops a poll or the messages after it."""

import email
import email.policy
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime

import nh3

from messaging.services.attachments import IncomingAttachment

from .addresses import address_list

logger = logging.getLogger(__name__)

AUTOMATED_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
FOLDING = re.compile(r"\r?\n[ \t]+")


@dataclass
class ParsedMail:
    message_id: str
    subject: str = ""
    from_name: str = ""
    from_address: str = ""
    to: list[str] = field(default_factory=list)  # "Name <address>" (addresses.address_list)
    cc: list[str] = field(default_factory=list)
    date: datetime | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    text: str = ""
    html: str = ""  # sanitised (nh3), for display
    attachments: list[IncomingAttachment] = field(default_factory=list)
    auto_submitted: str = ""
    auto_reply: bool = False
    bulk: bool = False
    malformed: bool = False
    problems: list[str] = field(default_factory=list)

    def metadata(self) -> dict:
        data = {
            "subject": self.subject,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": self.references[-20:],
        }
        for name in ("to", "cc"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        if self.date is not None:
            data["date"] = self.date.isoformat()
        if self.html:
            data["html"] = self.html
        flags = [
            name
            for name, on in (
                ("auto_reply", self.auto_reply),
                ("bulk", self.bulk),
                ("malformed", self.malformed),
            )
            if on
        ]
        if flags:
            data["flags"] = flags
            data.update(dict.fromkeys(flags, True))
        if self.auto_submitted:
            data["auto_submitted"] = self.auto_submitted
        return data


def message_ids(value: str) -> list[str]:
    """The Message-IDs in a header value (without angle brackets), in order, once each."""
    found = MESSAGE_ID.findall(value or "")
    if not found and value and value.strip() and " " not in value.strip():
        found = [value.strip().strip("<>")]  # a bare id, as some mailers send
    seen, ordered = set(), []
    for item in found:
        if item not in seen:
            seen.add(item)
            ordered.append(item)
    return ordered


def parse_mail(raw: bytes, *, attachment_limit: int) -> ParsedMail:
    try:
        # Most mail is one text/plain part: the light compat32 reading suffices for it;
        # everything else (HTML, multipart, attachments) is read with the modern policy.
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        if message.is_multipart() or _content_type(message) not in ("text/plain", ""):
            message = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # the parser is lenient; this is the last resort
        logger.warning("email: unreadable message (%s)", exc.__class__.__name__)
        return ParsedMail(
            message_id=_fallback_id(raw),
            text=raw.decode("utf-8", "replace")[:100_000],
            malformed=True,
            problems=[exc.__class__.__name__],
        )
    mail = ParsedMail(message_id="")
    # Headers are read raw once (the policy's header objects cost more than the whole rest);
    # only what is shown is decoded (encoded words, charsets).
    headers = _read(mail, lambda: _raw_headers(message)) or {}
    mail.message_id = (message_ids(headers.get("message-id", "")) or [""])[0] or _fallback_id(raw)
    mail.subject = _one_line(_decoded(mail, message, "Subject", headers))
    sender = _read(mail, lambda: getaddresses([_decoded(mail, message, "From", headers)])) or []
    if sender:
        mail.from_name, mail.from_address = sender[0][0], sender[0][1].strip().lower()
    for name in ("to", "cc"):
        value = _decoded(mail, message, name.title(), headers)
        setattr(mail, name, _read(mail, lambda value=value: address_list(value)) or [])
    mail.date = _read(mail, lambda: _date(headers.get("date")))
    mail.in_reply_to = message_ids(headers.get("in-reply-to", ""))
    mail.references = message_ids(headers.get("references", ""))
    _flag_automated(mail, headers)
    _read_body(mail, message, headers, attachment_limit)
    if getattr(message, "defects", None):
        mail.problems += [type(defect).__name__ for defect in message.defects]
        mail.malformed = True
    return mail


def _content_type(message) -> str:
    value = next((v for k, v in message.raw_items() if k.lower() == "content-type"), "")
    return str(value).split(";")[0].strip().lower()


def _raw_headers(message) -> dict[str, str]:
    """Header name (lower case) -> its first value, unfolded, undecoded."""
    headers = {}
    for name, value in message.raw_items():
        headers.setdefault(name.lower(), FOLDING.sub(" ", str(value)).strip())
    return headers


def _decoded(mail: ParsedMail, message, name: str, headers: dict) -> str:
    value = headers.get(name.lower(), "")
    if "=?" not in value and value.isascii():
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # an unknown charset, broken encoded words: the policy's best reading
        return _read(mail, lambda: str(message[name] or "")) or ""


def _read(mail: ParsedMail, getter):
    try:
        return getter()
    except Exception as exc:
        mail.malformed = True
        mail.problems.append(exc.__class__.__name__)
        return None


def _one_line(value: str) -> str:
    return " ".join(value.split())[:500]


def _date(header) -> datetime | None:
    if not header:
        return None
    stamp = parsedate_to_datetime(header)
    if stamp is not None and stamp.tzinfo is None:
        return None  # a date without a zone cannot be placed; the server's arrival is used
    return stamp


def _fallback_id(raw: bytes) -> str:
    """A stable id for a mail without one (the same bytes give the same id)."""
    return f"{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id.switchboard"


def _flag_automated(mail: ParsedMail, headers: dict) -> None:
    auto_submitted = headers.get("auto-submitted", "").lower()
    mail.auto_submitted = auto_submitted
    mail.auto_reply = bool(
        (auto_submitted and auto_submitted != "no") or headers.get("x-auto-response-suppress")
    )
    precedence = headers.get("precedence", "").lower()
    list_headers = any(name.startswith("list-") for name in headers)
    mail.bulk = precedence in AUTOMATED_PRECEDENCE or list_headers
    if precedence == "auto_reply":
        mail.auto_reply = True


def _text_of(part) -> str:
    try:
        if isinstance(part.policy, email.policy.Compat32):  # the plain single-part path
            payload = part.get_payload(decode=True) or b""
            text = payload.decode(part.get_content_charset() or "utf-8", "replace")
        else:
            text = part.get_content()
    except (LookupError, UnicodeError, AssertionError, ValueError):
        payload = part.get_payload(decode=True) or b""
        text = payload.decode("utf-8", "replace")
    if not isinstance(text, str):  # a text part whose content came back as bytes
        text = bytes(text).decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_body(mail: ParsedMail, message, headers: dict, attachment_limit: int) -> None:
    content_type = headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    if not message.is_multipart() and content_type in ("text/plain", ""):
        mail.text = (_read(mail, lambda: _text_of(message)) or "").strip()  # the common case
        return
    plain = _read(mail, lambda: message.get_body(preferencelist=("plain",)))
    html = _read(mail, lambda: message.get_body(preferencelist=("html",)))
    if plain is not None:
        mail.text = _read(mail, lambda: _text_of(plain)) or ""
    if html is not None:
        raw_html = _read(mail, lambda: _text_of(html)) or ""
        mail.html = nh3.clean(raw_html)
        if not mail.text:  # HTML only: its text, without any markup
            mail.text = _html_to_text(raw_html)
    if plain is None and html is None and not message.is_multipart():
        mail.text = _read(mail, lambda: _text_of(message)) or ""
    mail.text = mail.text.strip()
    for part in _read(mail, lambda: list(message.iter_attachments())) or []:
        attachment = _read(mail, lambda part=part: _attachment(part, attachment_limit))
        if attachment is not None:
            mail.attachments.append(attachment)


def _attachment(part, limit: int) -> IncomingAttachment:
    payload = part.get_payload(decode=True) or b""
    kind = part.get_content_maintype()
    return IncomingAttachment(
        kind={"image": "image", "video": "video", "audio": "audio"}.get(kind, "document"),
        filename=part.get_filename() or "attachment",
        content_type=part.get_content_type(),
        size=len(payload),
        content=payload if len(payload) <= limit else None,
    )


def _html_to_text(html: str) -> str:
    stripped = nh3.clean(re.sub(r"(?i)<\s*(br|/p|/div|/li|/tr|/h\d)\s*/?>", "\n", html), tags=set())
    text = re.sub(r"&nbsp;", " ", stripped)
    text = re.sub(r"&amp;", "&", re.sub(r"&lt;", "<", re.sub(r"&gt;", ">", text)))
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()
