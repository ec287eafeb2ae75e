"""Sending to a phone number (the API's /send): the conversation with that number is found
or opened, and the message goes out through send_message, the one door out."""

from django.core.exceptions import ValidationError

from messaging.models import Message
from messaging.services import Sender, SourceInactive, open_conversation, send_message

from ..models import WhatsAppNumber


def send_to_phone(
    actor, number: WhatsAppNumber, phone: str, body: str, quoted: str = ""
) -> Message:
    """Queue `body` to `phone` (E.164) on `number`; `quoted` names a WhatsApp message id."""
    digits = phone.lstrip("+")
    try:
        conversation = open_conversation(number, digits, Sender(address=phone, phone=phone))
    except SourceInactive:
        raise ValidationError(
            {"number": ["This number is deactivated; it sends nothing."]}
        ) from None
    return send_message(conversation, actor, body, metadata={"quoted": quoted} if quoted else None)
