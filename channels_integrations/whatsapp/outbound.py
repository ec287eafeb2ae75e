"""Sending to a phone number (the API's /send): the conversation with that number is found
or opened, and the message goes out through send_message, the one door out."""

from django.core.exceptions import ValidationError

from messaging import channels, selectors
from messaging.models import Conversation, Message
from messaging.services import Sender, SourceInactive, open_conversation, send_message
from messaging.services.inbox import WINDOW_CLOSED

from ..models import WhatsAppNumber
from . import PLATFORM
from .channel import CHANNEL

INACTIVE = "This number is deactivated; it sends nothing."


def send_to_phone(
    actor,
    number: WhatsAppNumber,
    phone: str,
    body: str,
    quoted: str = "",
    *,
    template: dict | None = None,
) -> Message:
    """Queue `body` (or a `template`: {"name", "language", "variables"}) to `phone` (E.164) on
    `number`; `quoted` names a WhatsApp message id. From a Cloud number, free text reaches
    only a phone that wrote within 24 hours, a template anyone: anything else is refused
    before a conversation is opened (nothing is written)."""
    digits = phone.lstrip("+")
    if not channels.live(number):
        raise ValidationError({"number": [INACTIVE]})
    if template is not None:  # checked before the conversation is opened
        CHANNEL.resolve_template(
            number,
            template.get("name", ""),
            template.get("language", ""),
            template.get("variables"),
        )
    elif CHANNEL.reply_window(number) is not None:
        existing = Conversation.objects.filter(
            platform=PLATFORM, source_id=number.pk, external_thread_id=digits
        ).first()
        window = selectors.reply_window(existing) if existing else None
        if window is None or not window.is_open:
            raise ValidationError({"message": [WINDOW_CLOSED]})
    try:
        conversation = open_conversation(number, digits, Sender(address=phone, phone=phone))
    except SourceInactive:
        raise ValidationError({"number": [INACTIVE]}) from None
    try:
        return send_message(
            conversation,
            actor,
            body,
            metadata={"quoted": quoted} if quoted else None,
            template=template,
        )
    except ValidationError as exc:  # the API's field is `message`
        errors = dict(exc.message_dict)
        if "body" in errors:
            errors["message"] = errors.pop("body")
        raise ValidationError(errors) from None
