"""An email reply as the agent writes it: subject, Cc and Bcc checked and stored on the queued
message (the row is the truth), with the mailbox's signature and the message it answers; and
that message quoted ("On <date>, <who> wrote:" and "> " lines) when it goes out."""

from datetime import datetime
from email.utils import formataddr, getaddresses

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .route import Quote
from .smtp import reply_subject

SUBJECT_MAX = 500
COPIES_MAX = 20  # addresses in Cc, and in Bcc
COPY_FIELDS = ("cc", "bcc")


def parse_addresses(field: str, value) -> list[str]:
    """A list of addresses (or one text of them, separated by commas or semicolons) as plain
    addresses; ValidationError naming `field` for the first one that is not an address."""
    if value in (None, ""):
        return []
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise ValidationError({field: [_("Give the addresses as text.")]})
    found, seen = [], set()
    for item in items:
        for raw in item.replace(";", ",").split(","):
            raw = raw.strip()
            if not raw:
                continue
            parsed = getaddresses([raw])
            address = parsed[0][1].strip() if len(parsed) == 1 else ""
            try:
                if not address or "\n" in raw or "\r" in raw:
                    raise ValidationError("invalid")
                validate_email(address)
            except ValidationError:
                raise ValidationError(
                    {field: [_("“%(value)s” is not a valid email address.") % {"value": raw[:100]}]}
                ) from None
            if address.lower() not in seen:
                seen.add(address.lower())
                found.append(address)
    if len(found) > COPIES_MAX:
        raise ValidationError(
            {
                field: [
                    ngettext(
                        "At most %(limit)d address.", "At most %(limit)d addresses.", COPIES_MAX
                    )
                    % {"limit": COPIES_MAX}
                ]
            }
        )
    return found


def clean_subject(conversation, value) -> str:
    """The subject a reply goes out with: as written (on one line), else "Re: " + the thread's."""
    if value is not None and not isinstance(value, str):
        raise ValidationError({"subject": [_("Give the subject as text.")]})
    subject = " ".join((value or "").split())
    if not subject:
        return reply_subject(conversation.subject)
    if len(subject) > SUBJECT_MAX:
        raise ValidationError(
            {"subject": [_("At most %(limit)d characters.") % {"limit": SUBJECT_MAX}]}
        )
    return subject


REFERENCES_KEPT = 20


def answered_message(conversation, exclude=None):
    """The message a reply answers now: the conversation's latest with a Message-ID (ours
    included)."""
    messages = conversation.messages.exclude(external_id=None)
    if exclude is not None:
        messages = messages.exclude(pk=exclude.pk)
    return messages.order_by("-created_at", "-id").first()


def thread_headers(answered) -> dict:
    """In-Reply-To and References of a reply to `answered` (its References, then its id)."""
    references = [*(answered.metadata or {}).get("references", []), answered.external_id]
    return {"in_reply_to": answered.external_id, "references": references[-REFERENCES_KEPT:]}


def reply_metadata(conversation, options: dict, to_address: str) -> dict:
    """What an email reply stores on its queued message; one ValidationError for every bad
    field (subject, cc, bcc), so nothing is half-written."""
    unknown = set(options) - {"subject", *COPY_FIELDS}
    errors = {name: [_("Email replies have no such field.")] for name in unknown}
    data = {}
    for name, clean in (
        ("subject", lambda: clean_subject(conversation, options.get("subject"))),
        ("cc", lambda: parse_addresses("cc", options.get("cc"))),
        ("bcc", lambda: parse_addresses("bcc", options.get("bcc"))),
    ):
        try:
            data[name] = clean()
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    source = conversation.source
    answered = answered_message(conversation)
    data["to"] = [to_address] if to_address else []
    data["signature"] = getattr(source, "signature", "") or ""
    if answered is not None:  # pinned now: the reply answers what the agent saw
        data["reply_to"] = answered.pk
        data.update(thread_headers(answered))
    return data


def sent_at(message) -> datetime:
    """When a mail was written: its Date header (kept at import), else when we stored it."""
    stamp = (message.metadata or {}).get("date")
    if stamp:
        try:
            return datetime.fromisoformat(stamp)
        except (TypeError, ValueError):
            pass
    return message.created_at


def quote_of(message) -> Quote | None:
    """`message` (the one a reply answers) as the reply quotes it."""
    text = (message.body or "").strip()
    if not text:
        return None
    who = message.sender_name or ""
    address = message.sender_address or ""
    if message.direction == "out":
        source = message.conversation.source
        who = who or getattr(source, "display_name", "")
        address = getattr(source, "address", "") or address
    author = formataddr((who, address)) if address else who or _("someone")
    when = formats.date_format(timezone.localtime(sent_at(message)), "DATETIME_FORMAT")
    return Quote(
        attribution=_("On %(date)s, %(author)s wrote:") % {"date": when, "author": author},
        text=text,
    )
