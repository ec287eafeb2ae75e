"""Reading one raw email into plain data. It never raises: whatever cannot be read is left
out and the mail is flagged `malformed`, so one bad message never stops a poll.

What is kept of a mail (see README, "Email"):
- headers decoded per RFC 2047 (encoded words, also split across words and charsets),
  RFC 2231 (parameters) and RFC 6532 (raw UTF-8); other raw 8-bit bytes are decoded by
  charset detection (charset-normalizer). Addresses are parsed before their names are
  decoded, so "Surname, Given" in an encoded word stays one address;
- the body text: text/plain, or the text of the HTML when the plain part is missing or
  empty; inline text parts in their order (Apple Mail's text, image, text); the HTML
  (sanitised with nh3) for display;
- every attachment at any depth of nested multiparts, including those under a
  multipart/alternative (inline images), with its real name and size;
- forwarded messages (message/rfc822): kept as a .eml attachment, summarised in the body, and
  their own attachments kept as well;
- delivery and read reports (multipart/report): recognised, their fields read, and the
  Message-ID of the mail they report on (the importer threads them there).

The tree is read with the light compat32 policy (its header objects are plain strings) and
every text is decoded here, so raw 8-bit bytes never reach the database as surrogates, and
NUL bytes (PostgreSQL refuses them in text and JSON) are dropped."""

import base64
import binascii
import email
import email.message
import email.policy
import hashlib
import logging
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import getaddresses, parsedate_to_datetime

import nh3

from messaging.services.attachments import IncomingAttachment

logger = logging.getLogger(__name__)

AUTOMATED_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
FOLDING = re.compile(r"\r?\n[ \t]+")
ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
MAX_DEPTH = 30  # nested multiparts and forwarded messages
MAX_PARTS = 1000
MAX_TEXT = 1_000_000  # characters of body text kept
DETECT_BYTES = 32_768  # how much charset detection reads

# What mail programs declare and what they mean (a superset that decodes what they send).
CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "euc-cn": "gb18030",
    "cp936": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso_8859-1": "cp1252",
    "iso-8859-8-i": "iso-8859-8",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-9": "cp1254",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "x-unknown": "",
    "unknown-8bit": "",
    "us-ascii": "",
    "ascii": "",
    "default": "",
}
REPORT_PARTS = {
    "message/delivery-status": "delivery-status",
    "message/global-delivery-status": "delivery-status",
    "message/disposition-notification": "disposition-notification",
    "message/global-disposition-notification": "disposition-notification",
    "message/feedback-report": "feedback-report",
}
REPORT_FIELDS = {
    "action": "action",
    "status": "status",
    "final-recipient": "recipient",
    "original-recipient": "original_recipient",
    "diagnostic-code": "diagnostic",
    "disposition": "disposition",
    "original-message-id": "original_message_id",
    "feedback-type": "feedback_type",
    "reporting-mta": "reporting_mta",
    "reporting-ua": "reporting_ua",
}
KINDS = {"image": "image", "video": "video", "audio": "audio"}
SEVEN_BIT_STATEFUL = ("iso2022", "utf_7", "hz")
DEFAULT_NAMES = {
    "message/delivery-status": "delivery-status.txt",
    "message/global-delivery-status": "delivery-status.txt",
    "message/disposition-notification": "read-receipt.txt",
    "message/global-disposition-notification": "read-receipt.txt",
    "message/feedback-report": "feedback-report.txt",
    "text/rfc822-headers": "original-headers.txt",
    "message/rfc822": "message.eml",
    "message/global": "message.eml",
}


@dataclass
class ParsedMail:
    message_id: str
    subject: str = ""
    from_name: str = ""
    from_address: str = ""
    to: list[tuple[str, str]] = field(default_factory=list)  # (name, address)
    cc: list[tuple[str, str]] = field(default_factory=list)
    date: datetime | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    thread_index_root: str = ""  # Outlook's Thread-Index: its 22-byte root, base64
    thread_topic: str = ""
    text: str = ""
    html: str = ""  # sanitised (nh3), for display
    attachments: list[IncomingAttachment] = field(default_factory=list)
    forwarded: list[dict] = field(default_factory=list)  # summaries of message/rfc822 parts
    report: dict | None = None  # a delivery / read / feedback report: its fields
    auto_submitted: str = ""
    auto_reply: bool = False
    bulk: bool = False
    malformed: bool = False
    problems: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def reported_message_id(self) -> str:
        return (self.report or {}).get("original_message_id", "")

    def metadata(self) -> dict:
        data = {
            "subject": self.subject,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": self.references[-20:],
        }
        if self.from_address:
            data["from"] = {"name": self.from_name, "address": self.from_address}
        if self.to:
            data["to"] = _shown(self.to)
        if self.cc:
            data["cc"] = _shown(self.cc)
        if self.date is not None:
            data["date"] = self.date.isoformat()
        if self.html:
            data["html"] = self.html
        if self.thread_index_root:
            data["thread_index"] = self.thread_index_root
        if self.forwarded:
            data["forwarded"] = self.forwarded[:10]
        if self.report:
            data["report"] = self.report
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
        if self.problems:
            data["problems"] = sorted(set(self.problems))[:10]
        if self.auto_submitted:
            data["auto_submitted"] = self.auto_submitted
        return data


# ---------------------------------------------------------------- text helpers


def clean(text: str) -> str:
    """A string PostgreSQL stores: no NUL, no lone surrogates (raw 8-bit bytes the email
    package kept as surrogate escapes become what they most likely meant)."""
    if not text:
        return ""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def charset_name(charset) -> str:
    """A codec Python knows for a declared charset, or "" (unknown, or says nothing)."""
    if not charset or not isinstance(charset, str):
        return ""
    name = charset.strip().strip("\"'").lower()
    name = CHARSET_ALIASES.get(name, name)
    if not name:
        return ""
    try:
        import codecs

        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return ""


def detect(data: bytes) -> str:
    """The charset these bytes are most likely in (charset-normalizer), or ""."""
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:DETECT_BYTES]).best()
    except Exception:  # detection is a guess; no guess is fine
        return ""
    return best.encoding if best is not None else ""


def decode_bytes(data: bytes, charset=None) -> str:
    """Bytes to text: the declared charset (as mailers mean it), else UTF-8, else detected,
    else the declared or Windows-1252 with replacement characters. Never raises."""
    if not data:
        return ""
    name = charset_name(charset)
    if data.isascii() and not name.startswith(SEVEN_BIT_STATEFUL):
        return clean(data.decode("ascii"))
    for candidate in (name, "utf-8"):
        if candidate and candidate not in ("ascii", "us-ascii"):
            try:
                return clean(data.decode(candidate))
            except (UnicodeDecodeError, LookupError):
                pass
    # Mostly UTF-8 with a stray byte (a cut multibyte character): UTF-8 it is.
    as_utf8 = data.decode("utf-8", "replace")
    broken = as_utf8.count("\ufffd")
    if broken and sum(1 for ch in as_utf8 if ord(ch) > 127) >= 5 * broken:
        return clean(as_utf8)
    # Detection needs more than a few bytes to go on; for a few, Windows-1252 is likelier.
    high = sum(1 for byte in data if byte > 127)
    guess = detect(data) if high >= 8 else ""
    if guess.startswith(("utf_16", "utf_32")) and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        guess = ""
    for candidate in (guess, name):
        if candidate:
            try:
                return clean(data.decode(candidate, "replace"))
            except LookupError:
                pass
    return clean(data.decode("cp1252", "replace"))


def _raw_bytes(value: str) -> bytes:
    return value.encode("ascii", "surrogateescape")


def _unraw(value: str, hint=None) -> str:
    """A header value with raw 8-bit bytes (surrogate escapes) as text: RFC 6532 UTF-8, else
    the hint (the mail's charset), else detected."""
    if value.isascii():
        return value
    try:
        raw = _raw_bytes(value)
    except UnicodeEncodeError:  # real text already (not from bytes)
        return clean(value)
    return decode_bytes(raw, hint)


def _word_bytes(encoding: str, text: str) -> bytes:
    if encoding in "bB":
        text = re.sub(r"[^A-Za-z0-9+/]", "", text)
        return base64.b64decode(text + "=" * (-len(text) % 4))
    data = text.replace("_", " ").encode("ascii", "surrogateescape")
    return QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def decode_header(value, hint=None) -> str:
    """A header value as text: raw 8-bit bytes decoded (RFC 6532 or detected), encoded words
    decoded (RFC 2047; adjacent words of one charset joined before decoding, so a character
    split between words survives; whitespace between words dropped). Never raises."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    value = _unraw(FOLDING.sub(" ", value), hint)
    if "=?" not in value:
        return clean(value)
    pieces: list[str] = []
    run_charset, run = None, b""
    position = 0

    def flush():
        nonlocal run_charset, run
        if run_charset is not None:
            pieces.append(decode_bytes(run, run_charset))
        run_charset, run = None, b""

    for match in ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        if between.strip() or run_charset is None:
            flush()
            pieces.append(between)
        charset = match.group(1).split("*")[0]  # RFC 2231 language suffix
        try:
            data = _word_bytes(match.group(2), match.group(3))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            flush()
            pieces.append(match.group(0))
        else:
            if run_charset is not None and charset.lower() != run_charset.lower():
                flush()
            if run_charset is None:
                run_charset = charset
            run += data
        position = match.end()
    flush()
    pieces.append(value[position:])
    return clean("".join(pieces))


def one_line(value: str, limit: int = 500) -> str:
    return " ".join(value.split())[:limit]


def addresses(value, hint=None) -> list[tuple[str, str]]:
    """(name, address) pairs of an address header. Parsed before names are decoded (an
    encoded word may hold a comma), raw 8-bit names decoded first; an unquoted
    "Surname, Given <a@b>" keeps its name together. Never raises."""
    if not value:
        return []
    try:
        text = _unraw(FOLDING.sub(" ", str(value)), hint)
        words: list[str] = []

        def hide(match):  # an encoded word is one atom while the list is split
            words.append(match.group(0))
            return f"SBEWORD{len(words) - 1}X"

        protected = ENCODED_WORD.sub(hide, text)
        pairs = getaddresses([protected])
    except Exception:
        return []

    def reveal(part: str) -> str:
        return re.sub(r"SBEWORD(\d+)X", lambda m: words[int(m.group(1))], part)

    found, stray = [], []
    for name, address in pairs:
        name, address = reveal(name), reveal(address)
        if "@" not in address:
            stray.append(" ".join(x for x in (name, address) if x))  # a name split at a comma
            continue
        if not name and stray:
            name = ", ".join(stray)
        stray = []
        found.append(
            (one_line(decode_header(name).strip().strip("\"'"), 200), clean(address).lower())
        )
    return found


def message_ids(value: str) -> list[str]:
    """The Message-IDs in a header value (without angle brackets), in order, once each."""
    value = clean(value or "")
    found = MESSAGE_ID.findall(value)
    if not found and value.strip() and " " not in value.strip():
        found = [value.strip().strip("<>")]  # a bare id, as some mailers send
    seen, ordered = set(), []
    for item in found:
        item = item[:998]
        if item not in seen:
            seen.add(item)
            ordered.append(item)
    return ordered


REPLY_PREFIX = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?"
    r"(?:re|fwd?|aw|wg|sv|vs|antw|doorst|rif|tr|odp|pd|ynt|ilt|vá|atb|fs|rv|enc|res|"
    r"答复|回复|转发|回覆|轉寄|отв|ответ|пересл|переслать|вд|відп|відповідь|πρθ|ΑΠ|ΣΧΕΤ)"
    r"\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]\s*",
    re.IGNORECASE,
)


def normalize_subject(subject: str) -> tuple[str, bool]:
    """(the subject without Re:/Fwd:/AW:/Отв:/... prefixes, case-folded; whether it had one)."""
    text, had = " ".join((subject or "").split()), False
    while True:
        stripped = REPLY_PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text, had = stripped, True
    return text.casefold().strip(), had


# ---------------------------------------------------------------- the mail


def _shown(addresses: list[tuple[str, str]]) -> list[str]:
    """(name, address) pairs as a person reads them ("Name <address>"), the way replies store
    theirs. Not formataddr: it refuses the UTF-8 addresses RFC 6532 allows."""
    return [f"{name} <{address}>" if name else address for name, address in addresses[:50]]


def parse_mail(raw: bytes, *, attachment_limit: int) -> ParsedMail:
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as exc:  # the parser is lenient; this is the last resort
        logger.warning("email: unreadable message (%s)", exc.__class__.__name__)
        return ParsedMail(
            message_id=_fallback_id(raw),
            text=decode_bytes(raw[:MAX_TEXT]),
            malformed=True,
            problems=[exc.__class__.__name__],
            size=len(raw),
        )
    mail = ParsedMail(message_id="", size=len(raw))
    try:
        _read_message(mail, message, attachment_limit, depth=0)
    except Exception as exc:  # a defect no rule above foresaw: keep what was read
        logger.warning("email: message read partly (%s)", exc.__class__.__name__)
        mail.malformed = True
        mail.problems.append(exc.__class__.__name__)
    if not mail.message_id:
        mail.message_id = _fallback_id(raw)
    return mail


def _read_message(mail: ParsedMail, message, attachment_limit: int, depth: int) -> None:
    headers = _read(mail, lambda: _raw_headers(message)) or {}
    hint = None
    if not all(value.isascii() for value in headers.values()):  # raw 8-bit: what charset?
        hint = _read(mail, lambda: _body_charset(message))
    mail.message_id = (message_ids(headers.get("message-id", "")) or [""])[0]
    mail.subject = one_line(decode_header(headers.get("subject", ""), hint))
    sender = addresses(headers.get("from", ""), hint) or addresses(headers.get("sender", ""), hint)
    if sender:
        mail.from_name, mail.from_address = sender[0]
    elif headers.get("from"):
        mail.from_name = one_line(decode_header(headers["from"], hint), 200)
    mail.to = addresses(headers.get("to", ""), hint)
    mail.cc = addresses(headers.get("cc", ""), hint)
    mail.date = _read(mail, lambda: _date(headers.get("date")))
    mail.in_reply_to = message_ids(headers.get("in-reply-to", ""))
    mail.references = message_ids(headers.get("references", ""))
    mail.thread_index_root = _thread_index_root(headers.get("thread-index", ""))
    mail.thread_topic = one_line(decode_header(headers.get("thread-topic", ""), hint))
    _flag_automated(mail, headers)
    walk = _Walk(attachment_limit, depth)
    _walk(walk, mail, message, depth)
    mail.text = _join_texts(walk.texts)
    if walk.htmls:
        mail.html = clean(nh3.clean("\n".join(walk.htmls)))
    mail.attachments = walk.attachments
    mail.forwarded = walk.forwarded
    if walk.forwarded and not mail.text:
        mail.text = "\n\n".join(item["summary"] for item in walk.forwarded)[:MAX_TEXT]
    elif walk.forwarded:
        mail.text = (mail.text + "\n\n" + "\n\n".join(item["summary"] for item in walk.forwarded))[
            :MAX_TEXT
        ]
    if walk.report is not None:
        report = walk.report
        original = report.get("original_message_id") or next(iter(mail.in_reply_to), "")
        if original:
            report["original_message_id"] = original
        mail.report = report
        mail.auto_reply = True  # nobody (no bot) answers a bounce or a read receipt
    if getattr(message, "defects", None):
        mail.problems += [type(defect).__name__ for defect in message.defects][:10]
        mail.malformed = True


@dataclass
class _Walk:
    limit: int
    depth: int
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    attachments: list[IncomingAttachment] = field(default_factory=list)
    forwarded: list[dict] = field(default_factory=list)
    report: dict | None = None
    parts: int = 0


def _walk(walk: _Walk, mail: ParsedMail, part, depth: int) -> None:
    walk.parts += 1
    if depth > MAX_DEPTH or walk.parts > MAX_PARTS:
        if "too-deep" not in mail.problems:
            mail.problems.append("too-deep")
            mail.malformed = True
        return
    ctype = _content_type(part)
    if ctype in REPORT_PARTS:
        _report_fields(walk, part, REPORT_PARTS[ctype])
        _keep_attachment(walk, mail, part, ctype)
        return
    if ctype in ("message/rfc822", "message/global") or (
        ctype.startswith("message/") and isinstance(part.get_payload(), list)
    ):
        _forwarded(walk, mail, part, depth)
        return
    if part.is_multipart():
        children = [c for c in (part.get_payload() or []) if hasattr(c, "get_content_type")]
        if ctype == "multipart/alternative":
            _alternative(walk, mail, children, depth)
        elif ctype == "multipart/report":
            _report(walk, mail, part, children, depth)
        else:  # mixed, related, signed, digest, parallel, unknown: every part in order
            for child in children:
                _walk(walk, mail, child, depth + 1)
        return
    disposition = _read(mail, lambda: part.get_content_disposition())
    filename = _filename(part)
    if ctype.startswith("multipart/"):  # its boundary never came: what is there is text
        ctype = "text/plain"
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
        text = _read(mail, lambda: _text_of(part)) or ""
        if ctype == "text/html":
            walk.htmls.append(text)
            walk.texts.append(html_to_text(text))
        else:
            walk.texts.append(text)
        return
    _keep_attachment(walk, mail, part, ctype, filename)


def _alternative(walk: _Walk, mail: ParsedMail, children, depth: int) -> None:
    """One body among alternatives: plain text with content, else the HTML's text, else
    the richest other; the HTML for display; attachments from every alternative."""
    subs = []
    for child in children:
        sub = _Walk(walk.limit, depth, parts=walk.parts)
        _walk(sub, mail, child, depth + 1)
        walk.parts = sub.parts
        subs.append((_content_type(child), sub))
    plain = next((s for ctype, s in subs if ctype == "text/plain" and _join_texts(s.texts)), None)
    texted = [s for _, s in subs if _join_texts(s.texts)]
    chosen = plain or (texted[-1] if texted else None)
    if chosen is not None:
        walk.texts += chosen.texts
    with_html = [s for _, s in subs if s.htmls]
    if with_html:
        walk.htmls += with_html[-1].htmls
    for _, sub in subs:
        walk.attachments += sub.attachments
        walk.forwarded += sub.forwarded
        walk.report = walk.report or sub.report


def _report(walk: _Walk, mail: ParsedMail, part, children, depth: int) -> None:
    kind = (_read(mail, lambda: part.get_param("report-type")) or "") or "report"
    if isinstance(kind, tuple):  # RFC 2231 form
        kind = kind[2]
    walk.report = walk.report or {"type": str(kind).lower()[:40]}
    for child in children:
        ctype = _content_type(child)
        if ctype in ("message/rfc822", "message/global", "text/rfc822-headers"):
            original = _original_headers(child)
            if original.get("message-id"):
                walk.report.setdefault(
                    "original_message_id", (message_ids(original["message-id"]) or [""])[0]
                )
            subject = one_line(decode_header(original.get("subject", "")))
            if subject:
                walk.report.setdefault("original_subject", subject)
            name = _filename(child) or (
                f"{_safe_name(subject)}.eml" if subject and ctype != "text/rfc822-headers" else None
            )
            _keep_attachment(walk, mail, child, ctype, name)
        else:  # what the report says in words, and its machine-readable fields
            _walk(walk, mail, child, depth + 1)


def _report_fields(walk: _Walk, part, kind: str) -> None:
    report = walk.report = walk.report or {"type": kind}
    text = decode_bytes(_part_bytes(part))
    recipients = report.setdefault("recipients", [])
    current: dict = {}
    for line in FOLDING.sub(" ", text).splitlines() + [""]:
        if not line.strip():
            if current:
                recipients.append(current) if len(recipients) < 20 else None
                current = {}
            continue
        name, _, value = line.partition(":")
        key = REPORT_FIELDS.get(name.strip().lower())
        if key is None:
            continue
        value = one_line(value, 500)
        if key == "original_message_id":
            report[key] = (message_ids(value) or [""])[0]
        elif key in ("recipient", "original_recipient"):
            current[key] = value.split(";")[-1].strip()
        elif key in ("action", "status", "diagnostic"):
            current[key] = value
        else:
            report[key] = value
    report["recipients"] = [r for r in recipients if r]
    if not report["recipients"]:
        del report["recipients"]
    else:
        first = report["recipients"][0]
        for key in ("action", "status", "recipient", "diagnostic"):
            if key in first:
                report.setdefault(key, first[key])
    report["type"] = report.get("type") or kind


def _original_headers(part) -> dict:
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        try:
            return _raw_headers(payload[0])
        except Exception:
            return {}
    try:
        parsed = email.message_from_bytes(_part_bytes(part), policy=email.policy.compat32)
        return _raw_headers(parsed)
    except Exception:
        return {}


def _forwarded(walk: _Walk, mail: ParsedMail, part, depth: int) -> None:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if inner is None:
        _keep_attachment(walk, mail, part, "message/rfc822")
        return
    nested = ParsedMail(message_id="")
    _read_message(nested, inner, walk.limit, depth + 1)
    content = _message_bytes(inner)
    name = _filename(part) or f"{_safe_name(nested.subject) or 'message'}.eml"
    walk.attachments.append(_incoming("message/rfc822", name, content, walk.limit))
    walk.attachments += nested.attachments
    sender = (
        f"{nested.from_name} <{nested.from_address}>" if nested.from_name else nested.from_address
    )
    lines = ["---------- Forwarded message ----------"]
    if sender:
        lines.append(f"From: {sender}")
    if nested.date:
        lines.append(f"Date: {nested.date:%a, %d %b %Y %H:%M %z}")
    if nested.subject:
        lines.append(f"Subject: {nested.subject}")
    if nested.to:
        lines.append("To: " + ", ".join(a for _, a in nested.to[:10]))
    summary = "\n".join(lines) + ("\n\n" + nested.text if nested.text else "")
    walk.forwarded.append(
        {
            "subject": nested.subject,
            "from": nested.from_address,
            "message_id": nested.message_id,
            "summary": summary[:20_000],
        }
    )
    if nested.report and walk.report is None:
        walk.report = nested.report


def _keep_attachment(walk, mail, part, ctype, filename=None) -> None:
    def make():
        content = _part_bytes(part)
        name = filename or _filename(part) or _default_name(ctype, len(walk.attachments) + 1)
        return _incoming(ctype or "application/octet-stream", name, content, walk.limit)

    attachment = _read(mail, make)
    if attachment is not None:
        walk.attachments.append(attachment)


def _incoming(ctype: str, name: str, content: bytes, limit: int) -> IncomingAttachment:
    return IncomingAttachment(
        kind=KINDS.get(ctype.partition("/")[0], "document"),
        filename=_safe_name(name) or "attachment",
        content_type=clean(ctype)[:255],
        size=len(content),
        content=content if len(content) <= limit else None,
    )


def _default_name(ctype: str, number: int) -> str:
    if ctype in DEFAULT_NAMES:
        return DEFAULT_NAMES[ctype]
    extension = {"message/rfc822": ".eml", "text/plain": ".txt", "text/html": ".html"}.get(
        ctype
    ) or (mimetypes.guess_extension(ctype or "") or ".bin")
    stem = ctype.replace("/", "-") if ctype.startswith("message/") else f"attachment-{number}"
    return f"{stem}{extension}"


def _safe_name(name: str) -> str:
    name = clean(name or "")
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).replace("\\", "/").rsplit("/", 1)[-1]
    return " ".join(name.split()).strip(". ")[:200]


def _filename(part) -> str:
    try:
        raw = {}
        for key, value in part.raw_items():
            raw.setdefault(str(key).lower(), str(value))
        if not all(raw.get(key, "").isascii() for key in ("content-disposition", "content-type")):
            probe = email.message.Message()  # raw 8-bit parameters: decoded first
            for key in ("content-disposition", "content-type"):
                if key in raw:
                    probe[key] = _unraw(FOLDING.sub(" ", raw[key]))
            part = probe
        name = part.get_filename() or part.get_param("name") or ""
    except Exception:
        return ""
    if isinstance(name, tuple):  # an RFC 2231 value the email package left undecoded
        charset, _, value = name
        name = decode_bytes(_raw_bytes(str(value)), charset)
    return decode_header(str(name))


def _part_bytes(part) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, list):
        return b"".join(_message_bytes(item) for item in payload if hasattr(item, "as_bytes"))
    data = part.get_payload(decode=True)
    if data is None:
        data = str(payload or "").encode("utf-8", "surrogateescape")
    return data


def _message_bytes(message) -> bytes:
    try:
        return message.as_bytes()
    except Exception:
        try:
            return message.as_string().encode("utf-8", "surrogateescape")
        except Exception:
            return b""


def _content_type(part) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _body_charset(message) -> str:
    for part in message.walk():
        charset = part.get_param("charset")
        if isinstance(charset, str) and charset_name(charset):
            return charset
    return ""


def _raw_headers(message) -> dict[str, str]:
    """Header name (lower case) -> its first value, unfolded, undecoded (raw 8-bit bytes as
    surrogate escapes: `items()` would turn them into replacement characters)."""
    headers = {}
    for name, value in message.raw_items():
        headers.setdefault(str(name).lower(), FOLDING.sub(" ", str(value)).strip())
    return headers


def _read(mail: ParsedMail, getter):
    try:
        return getter()
    except Exception as exc:
        mail.malformed = True
        mail.problems.append(exc.__class__.__name__)
        return None


def _join_texts(texts: list[str]) -> str:
    parts = [text.strip("\n").rstrip() for text in texts if text and text.strip()]
    return "\n\n".join(parts)[:MAX_TEXT]


def _date(header) -> datetime | None:
    if not header:
        return None
    stamp = parsedate_to_datetime(clean(header))
    if stamp is not None and stamp.tzinfo is None:
        return None  # a date without a zone cannot be placed; the server's arrival is used
    return stamp


def _thread_index_root(value: str) -> str:
    value = re.sub(r"[^A-Za-z0-9+/=]", "", value or "")
    if not value:
        return ""
    try:
        data = base64.b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return ""
    return base64.b64encode(data[:22]).decode() if len(data) >= 22 else ""


def _fallback_id(raw: bytes) -> str:
    """A stable id for a mail without one (the same bytes give the same id)."""
    return f"{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id.switchboard"


def _flag_automated(mail: ParsedMail, headers: dict) -> None:
    auto_submitted = clean(headers.get("auto-submitted", "")).lower()[:100]
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
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = _part_bytes(part)
    text = decode_bytes(payload[: MAX_TEXT * 4], part.get_param("charset"))
    return text.replace("\r\n", "\n").replace("\r", "\n")


def html_to_text(html: str) -> str:
    html = re.sub(r"(?is)<(style|script|head)\b.*?</\1\s*>", "", html)
    stripped = nh3.clean(re.sub(r"(?i)<\s*(br|/p|/div|/li|/tr|/h\d)\s*/?>", "\n", html), tags=set())
    text = re.sub(r"&nbsp;|&#160;", " ", stripped)
    text = re.sub(r"&lt;", "<", re.sub(r"&gt;", ">", text))
    text = re.sub(r"&quot;", '"', re.sub(r"&#39;|&#x27;", "'", text))
    text = re.sub(r"&amp;", "&", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()
