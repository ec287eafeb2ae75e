"""An email message as the conversation page shows it: its headers (From, To, Cc, Bcc on our
replies, Subject), the text with quoted history folded, and whether its sanitised HTML is shown
in a frame (and has remote images, which wait for the agent)."""

import re
from dataclasses import dataclass, field
from email.utils import formataddr

ATTRIBUTION = re.compile(
    r"^\s*(on\s.+\b(wrote|writes)"
    r"|am\s.+\bschrieb"
    r"|le\s.+\ba\s+écrit"
    r"|el\s.+\bescribió"
    r"|.+\b(написал|написав|писал|писав|пише))[\w()]*\s*:\s*$",
    re.IGNORECASE,
)
WROTE_END = re.compile(
    r"(wrote|writes|schrieb|écrit|escribió|написал[\w()]*|написав)\s*:\s*$", re.I
)
ORIGINAL = re.compile(
    r"^\s*(-{2,}\s*(original message|ursprüngliche nachricht|исходное сообщение)\s*-{2,}"
    r"|_{10,})\s*$",
    re.IGNORECASE,
)
REMOTE_IMAGE = re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']?\s*(https?:)?//", re.IGNORECASE)


@dataclass(frozen=True)
class Segment:
    kind: str  # "text" or "quote"
    text: str


def _history_starts(lines: list[str], index: int) -> bool:
    """Whether the quoted history (everything below) begins at line `index`."""
    line = lines[index]
    if ORIGINAL.match(line):
        return True
    if ATTRIBUTION.match(line):
        return True
    # "On Tue, Jun 3, 2025 at 10:02 AM Maria Lopez <" / "maria@example.org> wrote:"
    following = lines[index + 1] if index + 1 < len(lines) else ""
    return bool(
        line.lstrip().lower().startswith("on ")
        and following
        and WROTE_END.search(following)
        and len(line) + len(following) < 300
    )


def split_quoted(text: str) -> list[Segment]:
    """`text` as what is new and what is quoted: the history below an "On … wrote:" line or an
    "Original Message" divider is one quote; each run of "> " lines in between is another."""
    lines = (text or "").strip("\n").split("\n")
    segments: list[Segment] = []
    current_kind, current = "text", []

    def flush():
        body = "\n".join(current).strip("\n")
        if body.strip():
            segments.append(Segment(current_kind, body))

    index = 0
    while index < len(lines):
        line = lines[index]
        if _history_starts(lines, index):
            flush()
            current_kind, current = "quote", lines[index:]
            break
        kind = "quote" if line.lstrip().startswith(">") else "text"
        if kind == "text" and current_kind == "quote" and not line.strip():
            # A blank line inside a run of quoted lines belongs to it if the run goes on.
            rest = next((other for other in lines[index + 1 :] if other.strip()), "")
            if rest.lstrip().startswith(">"):
                kind = "quote"
        if kind != current_kind:
            flush()
            current_kind, current = kind, []
        current.append(line)
        index += 1
    flush()
    return segments or [Segment("text", text or "")]


@dataclass
class MailView:
    sender: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    segments: list[Segment] = field(default_factory=list)
    html: bool = False
    remote_images: bool = False

    @property
    def has_quote(self) -> bool:
        return any(segment.kind == "quote" for segment in self.segments)


def mail_view(message, conversation) -> MailView:
    metadata = message.metadata or {}
    if message.direction == "out":
        source = conversation.source
        sender = (
            formataddr((source.display_name or "", source.address)) if source is not None else ""
        )
        to = metadata.get("to") or ([conversation.client.email] if conversation.client else [])
        subject = metadata.get("subject", "")
    else:
        name, address = message.sender_name, message.sender_address
        sender = formataddr((name, address)) if name and address else address or name
        to = metadata.get("to") or []
        if not to and conversation.source is not None:  # mail imported before To was kept
            to = [conversation.source.address]
        subject = metadata.get("subject", conversation.subject)
    html = metadata.get("html") or ""
    return MailView(
        sender=sender,
        to=[item for item in to if item],
        cc=metadata.get("cc") or [],
        bcc=(metadata.get("bcc") or []) if message.direction == "out" else [],
        subject=subject,
        segments=split_quoted(message.body),
        html=bool(html),
        remote_images=bool(REMOTE_IMAGE.search(html)),
    )
