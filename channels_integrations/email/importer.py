"""One raw email into the inbox, once: dedupe by Message-ID (whatever its UID or folder),
threading, then ingest_inbound. A mail that cannot be stored is quarantined (see
quarantine.py), never retried by itself, so no mail can stop a poll.

Threading (the first rule that finds a stored conversation decides):
1. a delivery or read report joins the conversation of the mail it reports on;
2. the nearest stored Message-ID in In-Reply-To, then References from the newest;
3. Outlook's Thread-Index (its root is the same for a whole thread);
4. a stored reply that referred to this mail (an original arriving after its replies joins
   them; if it also belongs elsewhere, the replies' conversation is merged into that one);
5. a reply-looking mail (Re:/Fwd:/AW:/Отв:... prefix, or references we do not know) with the
   same normalised subject and the same client within SUBJECT_THREAD_DAYS;
6. else its own thread: its first reference, else its own Message-ID.
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from crm.db.upsert import insert_unless_conflict
from messaging.models import Conversation, Message
from messaging.services import Sender, ingest_inbound
from messaging.services.merge import merge_conversations

from .. import channel_metrics
from ..models import EmailAccount, EmailMessageRecord
from .parsing import ParsedMail, normalize_subject, parse_mail

logger = logging.getLogger(__name__)

SUBJECT_THREAD_DAYS = 30
FUTURE_TOLERANCE = timedelta(days=1)  # a Date: further ahead than this is not believed
EARLIEST_DATE = datetime(1980, 1, 1, tzinfo=UTC)


def _nearest_first(mail: ParsedMail) -> list[str]:
    return [*mail.in_reply_to, *reversed(mail.references)]


def received_time(mail: ParsedMail, arrived_at, now) -> datetime:
    """When the mail was written: its Date if sane (not before 1980, at most a day ahead),
    else the server's INTERNALDATE if sane, else now."""
    for stamp in (mail.date, arrived_at):
        if stamp is not None and EARLIEST_DATE <= stamp <= now + FUTURE_TOLERANCE:
            return stamp
    return now


@dataclass
class Lookups:
    """What a batch looked up at once, kept up to date as its mails are stored."""

    by_id: dict[str, str] = field(default_factory=dict)  # Message-ID -> thread
    by_root: dict[str, str] = field(default_factory=dict)  # Thread-Index root -> thread
    # Message-ID -> [(the referring mail's Message-ID, its conversation id, thread)]
    replied: dict[str, list] = field(default_factory=dict)


def known_threads(account: EmailAccount, message_ids) -> dict[str, str]:
    """Message-ID -> thread id, for those of `message_ids` in a live conversation."""
    if not message_ids:
        return {}
    return dict(
        EmailMessageRecord.objects.filter(
            account=account, message_id__in=list(message_ids), conversation__isnull=False
        ).values_list("message_id", "conversation__external_thread_id")
    )


def lookups(account: EmailAccount, mails: list[ParsedMail]) -> Lookups:
    """At most three queries for a whole batch."""
    look = Lookups()
    refs = {ref for mail in mails for ref in _nearest_first(mail)}
    refs |= {mail.reported_message_id for mail in mails if mail.reported_message_id}
    look.by_id = known_threads(account, refs)
    roots = {mail.thread_index_root for mail in mails if mail.thread_index_root}
    if roots:
        for root, thread in (
            EmailMessageRecord.objects.filter(
                account=account, thread_root__in=roots, conversation__isnull=False
            )
            .order_by("created_at")
            .values_list("thread_root", "conversation__external_thread_id")
        ):
            look.by_root.setdefault(root, thread)
    ids = [mail.message_id for mail in mails]
    if ids:
        wanted = set(ids)
        for message_id, refs_of, conversation_id, thread in EmailMessageRecord.objects.filter(
            account=account, refs__has_any_keys=ids, conversation__isnull=False
        ).values_list("message_id", "refs", "conversation_id", "conversation__external_thread_id"):
            for ref in set(refs_of or ()) & wanted:
                if ref != message_id:
                    look.replied.setdefault(ref, []).append((message_id, conversation_id, thread))
    return look


def thread_of(
    account: EmailAccount, mail: ParsedMail, known: dict | Lookups | None = None, now=None
) -> str:
    """The conversation thread this mail joins (the rules in the module's docstring)."""
    look = known if isinstance(known, Lookups) else None
    if look is None:
        look = lookups(account, [mail]) if known is None else Lookups(by_id=known)
    if mail.reported_message_id in look.by_id:
        return look.by_id[mail.reported_message_id]
    for message_id in _nearest_first(mail):
        if message_id in look.by_id:
            return look.by_id[message_id]
    if mail.thread_index_root in look.by_root:
        return look.by_root[mail.thread_index_root]
    if look.replied.get(mail.message_id):
        return look.replied[mail.message_id][0][2]
    subject, prefixed = normalize_subject(mail.subject or mail.thread_topic)
    if (
        subject
        and mail.from_address
        and (prefixed or _nearest_first(mail) or mail.thread_index_root)
    ):
        found = _thread_by_subject(account, subject, mail.from_address, now or timezone.now())
        if found:
            return found
    if mail.references:
        return mail.references[0][:255]
    if mail.in_reply_to:
        return mail.in_reply_to[0][:255]
    return mail.message_id[:255]


def _thread_by_subject(account, subject: str, address: str, now) -> str:
    """The newest conversation of this sender with this normalised subject whose last message
    is within SUBJECT_THREAD_DAYS. "The same participants" means the same client: To/CC are
    not compared, since a reply often adds or drops a CC and the mailbox is always ours."""
    candidates = (
        Conversation.objects.of_source(account)
        .filter(
            client__email=address,
            last_message_at__gte=now - timedelta(days=SUBJECT_THREAD_DAYS),
        )
        # Newest first; of two with the same time (INTERNALDATE has whole seconds), the one
        # created last, not whichever PostgreSQL happens to return first.
        .order_by("-last_message_at", "-id")
        .values_list("external_thread_id", "subject")[:50]
    )
    for thread, their_subject in candidates:
        if normalize_subject(their_subject)[0] == subject:
            return thread
    return ""


def _store(account: EmailAccount, mail: ParsedMail, thread: str, uid, received_at):
    """One parsed mail into the inbox (inside the caller's transaction), with attachments."""
    result = ingest_inbound(
        account,
        external_thread_id=thread,
        external_message_id=mail.message_id[:255],
        sender=Sender(address=mail.from_address, name=mail.from_name, email=mail.from_address),
        body=mail.text,
        subject=mail.subject,
        received_at=received_at,
        metadata=mail.metadata(),
        attachments=mail.attachments,
    )
    if mail.malformed:
        logger.warning(
            "email: account=%s message uid=%s stored with problems: %s",
            account.pk,
            uid,
            ", ".join(mail.problems[:5]),
        )
    return result


CLAIM_SQL = """
INSERT INTO channels_integrations_emailmessagerecord
    (account_id, message_id, direction, uidvalidity, uid, thread_root, refs, created_at)
SELECT %s, item.message_id, 'in', %s, item.uid, item.root, item.refs::jsonb, now()
FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[]) AS item(message_id, uid, root, refs)
ON CONFLICT (account_id, message_id) DO NOTHING
RETURNING message_id, id
"""
SET_CONVERSATIONS_SQL = """
UPDATE channels_integrations_emailmessagerecord AS record SET conversation_id = item.conversation
FROM unnest(%s::bigint[], %s::bigint[]) AS item(id, conversation)
WHERE record.id = item.id
"""


def import_batch(account: EmailAccount, items, uidvalidity: int | None) -> dict:
    """A fetched batch [(uid, raw, arrived_at)] in one transaction: the Message-IDs claimed
    with one INSERT, the threads looked up with a few SELECTs, each new mail through
    ingest_inbound, the records' conversations set with one UPDATE, the events handed to the
    publisher after the commit. If anything in it fails, the batch is imported again mail by
    mail, and a mail that still fails is quarantined ("quarantined": how many), so it never
    holds up the mails after it, nor comes back on the next poll."""
    from .quarantine import quarantine

    parsed, failed = [], []
    for uid, raw, arrived in items:
        try:
            mail = parse_mail(raw, attachment_limit=settings.ATTACHMENT_MAX_BYTES)
        except Exception as exc:  # parse_mail never raises; this is the last resort
            failed.append((uid, "", raw, arrived, exc))
            continue
        parsed.append((uid, mail, arrived, raw))
    counts = None
    try:
        with transaction.atomic():
            counts = _import_parsed(account, [p[:3] for p in parsed], uidvalidity)
    except Exception:
        logger.exception("email: account=%s batch failed; importing mail by mail", account.pk)
    if counts is None:
        counts = {"imported": 0, "known": 0}
        for uid, mail, arrived, raw in parsed:
            try:
                with transaction.atomic():
                    outcome = _import_parsed(account, [(uid, mail, arrived)], uidvalidity)
            except Exception as exc:
                logger.exception("email: account=%s uid=%s could not be imported", account.pk, uid)
                failed.append((uid, mail.message_id, raw, arrived, exc))
                continue
            counts["imported"] += outcome["imported"]
            counts["known"] += outcome["known"]
    for uid, message_id, raw, arrived, exc in failed:
        quarantine(account, uidvalidity, uid, message_id, raw, exc, arrived)
    counts["quarantined"] = len(failed)
    return counts


def _import_parsed(account, parsed, uidvalidity) -> dict:
    first = {}  # a Message-ID twice in one batch: the first copy counts
    for uid, mail, _ in parsed:
        first.setdefault(mail.message_id[:998], (uid, mail))
    ids = list(first)
    with connection.cursor() as cursor:
        cursor.execute(
            CLAIM_SQL,
            [
                account.pk,
                uidvalidity,
                ids,
                [first[i][0] for i in ids],
                [first[i][1].thread_index_root for i in ids],
                [json.dumps(_nearest_first(first[i][1])[:100]) for i in ids],
            ],
        )
        claimed = dict(cursor.fetchall())
    new = [
        (uid, mail, arrived)
        for uid, mail, arrived in parsed
        if mail.message_id[:998] in claimed and first[mail.message_id[:998]][0] == uid
    ]
    look = lookups(account, [mail for _, mail, _ in new])
    now = timezone.now()
    record_ids, conversation_ids, stored = [], [], []
    for uid, mail, arrived in new:
        thread = thread_of(account, mail, look, now)
        replies = list(look.replied.get(mail.message_id, ()))  # stored before it: it is late
        received = received_time(mail, arrived, now)
        result = _store(account, mail, thread, uid, received)
        look.by_id[mail.message_id] = thread  # later mails of this batch may answer this one
        if mail.thread_index_root:
            look.by_root.setdefault(mail.thread_index_root, thread)
        for ref in _nearest_first(mail):  # an original later in this batch finds its replies
            look.replied.setdefault(ref, []).append(
                (mail.message_id, result.conversation.pk, thread)
            )
        record_ids.append(claimed[mail.message_id[:998]])
        conversation_ids.append(result.conversation.pk)
        stored.append((mail, result, received, replies))
    with connection.cursor() as cursor:
        cursor.execute(SET_CONVERSATIONS_SQL, [record_ids, conversation_ids])
    for mail, result, _, replies in stored:
        if not result.created:
            continue
        if mail.reported_message_id:
            _attach_report(result, mail)
        if replies:
            _join_replies(account, result, replies)
    if record_ids:
        channel_metrics.increment("email", "messages_received", len(record_ids))
    return {"imported": len(record_ids), "known": len(parsed) - len(record_ids)}


def _attach_report(result, mail: ParsedMail) -> None:
    """A delivery / read report: the message it reports on (ours, usually) notes it."""
    report = mail.report or {}
    summary = {
        key: report[key]
        for key in ("type", "action", "status", "recipient", "disposition", "diagnostic")
        if report.get(key)
    }
    summary["message_id"] = mail.message_id
    for original in Message.objects.select_for_update().filter(
        conversation_id=result.conversation.pk, external_id=mail.reported_message_id
    ):
        reports = [*original.metadata.get("reports", []), summary][-20:]
        original.metadata = {**original.metadata, "reports": reports}
        original.save(update_fields=["metadata"])


def _join_replies(account, result, replies) -> None:
    """This mail's replies were stored before it: their conversation(s) and this one become
    one, and this mail is placed before its earliest reply in the history."""
    conversation = result.conversation
    elsewhere = {conversation_id for _, conversation_id, _ in replies} - {conversation.pk}
    if elsewhere:
        others = list(
            Conversation.objects.of_source(account).filter(
                pk__in=elsewhere, company_id=account.company_id
            )
        )
        EmailMessageRecord.objects.filter(
            account=account, conversation_id__in=[c.pk for c in others]
        ).update(conversation_id=conversation.pk)
        conversation = merge_conversations(conversation, others)
        logger.info(
            "email: account=%s merged %s conversation(s) into %s",
            account.pk,
            len(others),
            conversation.pk,
        )
    earliest = Message.objects.filter(
        conversation_id=conversation.pk, external_id__in=[m for m, _, _ in replies]
    ).aggregate(at=Min("created_at"))["at"]
    if earliest is not None and earliest <= result.message.created_at:
        placed = earliest - timedelta(milliseconds=1)  # history is by time of storing
        Message.objects.filter(pk=result.message.pk).update(created_at=placed)


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
