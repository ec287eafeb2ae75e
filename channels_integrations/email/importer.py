"""One raw email into the inbox, once: dedupe by Message-ID (whatever its UID or folder),
threading by any stored Message-ID in References / In-Reply-To, then ingest_inbound."""

import logging

from django.conf import settings
from django.db import connection, transaction

from crm.db.upsert import insert_unless_conflict
from messaging.services import Sender, ingest_inbound
from messaging.services.attachments import add_attachments

from ..models import EmailAccount, EmailMessageRecord
from .parsing import ParsedMail, parse_mail

logger = logging.getLogger(__name__)


def _nearest_first(mail: ParsedMail) -> list[str]:
    return [*mail.in_reply_to, *reversed(mail.references)]


def known_threads(account: EmailAccount, message_ids) -> dict[str, str]:
    """Message-ID -> thread id, for those of `message_ids` in a live conversation."""
    if not message_ids:
        return {}
    return dict(
        EmailMessageRecord.objects.filter(
            account=account, message_id__in=list(message_ids), conversation__isnull=False
        ).values_list("message_id", "conversation__external_thread_id")
    )


def thread_of(account: EmailAccount, mail: ParsedMail, known: dict | None = None) -> str:
    """The conversation thread this mail joins: the nearest stored Message-ID it refers to
    (In-Reply-To first, then References from the newest), else its own thread root.
    `known` (Message-ID -> thread) saves the look-up when a batch did it already."""
    nearest_first = _nearest_first(mail)
    if nearest_first:
        if known is None:
            known = known_threads(account, nearest_first)
        for message_id in nearest_first:
            if message_id in known:
                return known[message_id]
    if mail.references:
        return mail.references[0][:255]
    if mail.in_reply_to:
        return mail.in_reply_to[0][:255]
    return mail.message_id[:255]


def _import_one(
    account: EmailAccount, mail: ParsedMail, uid: int, uidvalidity: int | None, arrived_at
) -> str:
    """One parsed mail in its own transaction: "imported", or "known" when its Message-ID was
    seen before (imported, sent, or in a conversation an agent deleted: it never comes back)."""
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
        result = _store(account, mail, thread_of(account, mail), uid, arrived_at)
        EmailMessageRecord.objects.filter(pk=record.pk).update(
            conversation_id=result.conversation.pk
        )
    return "imported"


def _store(account: EmailAccount, mail: ParsedMail, thread: str, uid, arrived_at):
    """One parsed mail into the inbox (inside the caller's transaction), with attachments."""
    result = ingest_inbound(
        account,
        external_thread_id=thread,
        external_message_id=mail.message_id[:255],
        sender=Sender(address=mail.from_address, name=mail.from_name, email=mail.from_address),
        body=mail.text,
        subject=mail.subject,
        received_at=mail.date or arrived_at,
        metadata=mail.metadata(),
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
    return result


def import_batch(account: EmailAccount, items, uidvalidity: int | None) -> dict:
    """A fetched batch [(uid, raw, arrived_at)] in one transaction: the Message-IDs claimed
    with one INSERT, the threads looked up with one SELECT, each new mail through
    ingest_inbound, the records' conversations set with one UPDATE, the events handed to the
    publisher after the commit. If anything in it fails, the batch is imported again
    mail by mail, so one bad mail never blocks the others; the UIDs that still fail are
    returned ("failed") for the next poll to try again."""
    parsed = [
        (uid, parse_mail(raw, attachment_limit=settings.ATTACHMENT_MAX_BYTES), arrived)
        for uid, raw, arrived in items
    ]
    try:
        with transaction.atomic():
            return _import_parsed(account, parsed, uidvalidity)
    except Exception:
        logger.exception("email: account=%s batch failed; importing mail by mail", account.pk)
    counts = {"imported": 0, "known": 0, "failed": []}
    for uid, mail, arrived in parsed:
        try:
            outcome = _import_one(account, mail, uid, uidvalidity, arrived)
        except Exception:  # kept for the next poll (the caller does not move past it)
            logger.exception("email: account=%s uid=%s could not be imported", account.pk, uid)
            counts["failed"].append(uid)
            continue
        counts["imported" if outcome == "imported" else "known"] += 1
    return counts


CLAIM_SQL = """
INSERT INTO channels_integrations_emailmessagerecord
    (account_id, message_id, direction, uidvalidity, uid, created_at)
SELECT %s, item.message_id, 'in', %s, item.uid, now()
FROM unnest(%s::text[], %s::bigint[]) AS item(message_id, uid)
ON CONFLICT (account_id, message_id) DO NOTHING
RETURNING message_id, id
"""
SET_CONVERSATIONS_SQL = """
UPDATE channels_integrations_emailmessagerecord AS record SET conversation_id = item.conversation
FROM unnest(%s::bigint[], %s::bigint[]) AS item(id, conversation)
WHERE record.id = item.id
"""


def _import_parsed(account, parsed, uidvalidity) -> dict:
    first = {}  # a Message-ID twice in one batch: the first copy counts
    for uid, mail, _ in parsed:
        first.setdefault(mail.message_id[:998], uid)
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, [account.pk, uidvalidity, list(first), list(first.values())])
        claimed = dict(cursor.fetchall())
    refs = {
        ref
        for _, mail, _ in parsed
        if mail.message_id[:998] in claimed
        for ref in _nearest_first(mail)
    }
    known = known_threads(account, refs)
    record_ids, conversation_ids = [], []
    for uid, mail, arrived in parsed:
        message_id = mail.message_id[:998]
        if first.get(message_id) != uid or message_id not in claimed:
            continue
        thread = thread_of(account, mail, known)
        result = _store(account, mail, thread, uid, arrived)
        known[message_id] = thread  # later mails of this batch may answer this one
        record_ids.append(claimed[message_id])
        conversation_ids.append(result.conversation.pk)
    with connection.cursor() as cursor:
        cursor.execute(SET_CONVERSATIONS_SQL, [record_ids, conversation_ids])
    return {"imported": len(record_ids), "known": len(parsed) - len(record_ids), "failed": []}


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
