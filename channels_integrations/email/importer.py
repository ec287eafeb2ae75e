"""One raw email into the inbox, once: dedupe by Message-ID (whatever its UID or folder),
threading by any stored Message-ID in References / In-Reply-To, then ingest_inbound."""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction

from crm.db.upsert import insert_unless_conflict
from messaging.services import Sender, ingest_inbound
from messaging.services.attachments import add_attachments

from ..models import EmailAccount, EmailMessageRecord
from .parsing import ParsedMail, parse_mail

logger = logging.getLogger(__name__)


def thread_of(account: EmailAccount, mail: ParsedMail) -> str:
    """The conversation thread this mail joins: the nearest stored Message-ID it refers to
    (In-Reply-To first, then References from the newest), else its own thread root."""
    nearest_first = [*mail.in_reply_to, *reversed(mail.references)]
    if nearest_first:
        known = dict(
            EmailMessageRecord.objects.filter(
                account=account, message_id__in=nearest_first, conversation__isnull=False
            ).values_list("message_id", "conversation__external_thread_id")
        )
        for message_id in nearest_first:
            if message_id in known:
                return known[message_id]
    if mail.references:
        return mail.references[0][:255]
    if mail.in_reply_to:
        return mail.in_reply_to[0][:255]
    return mail.message_id[:255]


def import_mail(
    account: EmailAccount,
    raw: bytes,
    *,
    uid: int | None = None,
    uidvalidity: int | None = None,
    arrived_at: datetime | None = None,
) -> str:
    """ "imported", or "known" when this Message-ID was seen before (imported, sent, or in a
    conversation an agent deleted: it never comes back)."""
    mail = parse_mail(raw, attachment_limit=settings.ATTACHMENT_MAX_BYTES)
    with transaction.atomic():
        record = EmailMessageRecord(
            account=account,
            message_id=mail.message_id[:998],
            direction=EmailMessageRecord.Direction.INBOUND,
            uid=uid,
            uidvalidity=uidvalidity,
        )
        if not insert_unless_conflict(record):
            return "known"
        result = ingest_inbound(
            account,
            external_thread_id=thread_of(account, mail),
            external_message_id=mail.message_id[:255],
            sender=Sender(address=mail.from_address, name=mail.from_name, email=mail.from_address),
            body=mail.text,
            subject=mail.subject,
            received_at=mail.date or arrived_at,
            metadata=mail.metadata(),
        )
        EmailMessageRecord.objects.filter(pk=record.pk).update(
            conversation_id=result.conversation.pk
        )
        if result.created and mail.attachments:
            add_attachments(result.message, mail.attachments)
    if mail.malformed:
        logger.warning(
            "email: account=%s message uid=%s stored with problems: %s",
            account.pk,
            uid,
            ", ".join(mail.problems[:5]),
        )
    return "imported"


def record_sent(account_id: int, conversation_id: int, message_id: str) -> None:
    """Our own reply's Message-ID: answers to it thread into the same conversation."""
    insert_unless_conflict(
        EmailMessageRecord(
            account_id=account_id,
            message_id=message_id[:998],
            direction=EmailMessageRecord.Direction.OUTBOUND,
            conversation_id=conversation_id,
        )
    )
