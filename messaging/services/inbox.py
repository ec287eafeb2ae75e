"""The inbox pipeline: one door in (`ingest_inbound`), one door out (`send_message`), and the
conversation writes agents make. Every change is published after commit via messaging.events."""

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.core.exceptions import ValidationError
from django.db import connections, models, router, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.db.upsert import insert_unless_conflict, prepared_cursor
from crm.models import Client
from notifications import services as notifications

from .. import channels, events
from ..models import Conversation, Message
from ..payloads import conversation_payload, message_payload
from ..selectors.window import reply_window
from ..signals import conversation_created, inbound_message_stored
from .attachments import (
    IncomingAttachment,
    add_attachments,
    check_outgoing_files,
    remove_stored_files,
    store_outgoing_files,
)
from .outbox import enqueue_delivery
from .states import publish_status_changed, reopen_for_reply, set_conversation_status  # noqa: F401

logger = logging.getLogger(__name__)

PREVIEW_LENGTH = 200
WINDOW_CLOSED = gettext_lazy(
    "The 24-hour customer-service window is closed (the client last wrote more than 24 hours "
    "ago, or never): only a template can be sent now."
)


class SourceInactive(Exception):
    """The number/account is deactivated or being deleted: it receives and sends nothing."""


@dataclass(frozen=True)
class Sender:
    """Who wrote an inbound message, as the channel knows them."""

    address: str  # what a reply goes to: phone, Telegram user id or email address
    name: str = ""
    phone: str = ""  # E.164
    email: str = ""
    telegram_user_id: int | None = None
    telegram_username: str = ""


@dataclass(frozen=True)
class IngestResult:
    message: Message
    conversation: Conversation
    created: bool  # False: this external message was already stored


@dataclass(frozen=True)
class Inbound:
    """One incoming message, as ingest_inbound takes it (for ingest_inbound_many)."""

    external_thread_id: str
    external_message_id: str
    sender: Sender
    body: str
    subject: str = ""
    received_at: datetime | None = None
    metadata: dict | None = None
    notice: bool = False
    # Recorded with the message when it is stored (not for a duplicate): add_attachments.
    attachments: tuple[IncomingAttachment, ...] = ()


def _live_channel(source) -> channels.Channel:
    """The channel of `source`; SourceInactive when the source may not receive or send."""
    channel = channels.for_source(source)
    if not channels.live(source):
        raise SourceInactive(f"{channel.platform} source {source.pk} is not active")
    return channel


# ---------------------------------------------------------------- inbound


def ingest_inbound(
    source,
    external_thread_id: str,
    external_message_id: str,
    sender: Sender,
    body: str,
    *,
    subject: str = "",
    received_at: datetime | None = None,
    metadata: dict | None = None,
    notice: bool = False,
    attachments: Sequence[IncomingAttachment] = (),
) -> IngestResult:
    """Store one incoming message, exactly once, with its `attachments` (recorded only when
    the message is new). A `notice` (the channel telling us something about the client, e.g.
    a changed number) is shown in the thread but is not unread and wakes no bot.

    Idempotent by construction: the message insert is `ON CONFLICT DO NOTHING` on
    (conversation, external id), so the same message ingested twice (a retry, a duplicate
    webhook, two workers at once) yields one row and one set of events.
    """
    inbound = Inbound(
        external_thread_id,
        external_message_id,
        sender,
        body,
        subject=subject,
        received_at=received_at,
        metadata=metadata,
        notice=notice,
        attachments=tuple(attachments),
    )
    return ingest_inbound_many(source, [inbound])[0]


def ingest_inbound_many(source, inbound: Sequence[Inbound]) -> list[IngestResult]:
    """ingest_inbound for several messages of one source (a webhook batch), in their order,
    with their attachments; the results in the same order.

    Their statements go to PostgreSQL in one pipeline (psycopg's pipeline mode): the
    database runs one while this process builds the next, instead of each waiting for the
    other (one drainer works through a busy number's deliveries). Several messages are one
    transaction (the caller's or their own)."""
    platform = _live_channel(source).platform
    using = router.db_for_write(Message)
    pending = [_pending(source, platform, item) for item in inbound]
    several_statements = len(pending) > 1 or any(item.attachments for item in inbound)
    with _atomic_unless_autocommit(using, several_statements):
        if len(pending) > 1 and _one_sender_per_thread(pending):
            first = _store_pipelined(using, pending)
            stored = [
                _create_missing(using, item, done)
                for item, done in zip(pending, first, strict=True)
            ]
        else:  # each in turn: see _one_sender_per_thread
            stored = [_create_missing(using, item, _store_inbound(using, item)) for item in pending]
        results = []
        for item, outcome in zip(pending, stored, strict=True):
            result = _ingested(source, platform, using, item, outcome)
            if result.created and item.attachments:
                add_attachments(result.message, list(item.attachments))
            results.append(result)
        # Assignees are told of their conversations' new messages, all in one go; a new
        # conversation's assignee (lead distribution) is told "assigned" instead.
        notifications.inbound_in_assigned_conversations(
            [
                (result.conversation, result.message)
                for item, outcome, result in zip(pending, stored, results, strict=True)
                if result.created and not item.thread.notice and not outcome.new_conversation
            ]
        )
    return results


@dataclass(frozen=True)
class _Thread:
    """Where an inbound message goes, and what to create when its thread or client is new."""

    source: object
    platform: str
    external_thread_id: str
    sender: Sender
    identity: dict  # see _client_identity
    subject: str
    notice: bool = False  # not counted unread


@dataclass(frozen=True)
class _Pending:
    """One inbound message on its way in: the row to insert and where it goes."""

    message: Message
    received_at: datetime
    thread: _Thread
    attachments: tuple[IncomingAttachment, ...] = ()


@dataclass(frozen=True)
class _Stored:
    conversation_id: int | None  # None: no such thread yet
    client_known: bool  # False: the sender has an identity that names no client yet
    conversation: Conversation | None  # after the bump; None: nothing stored (see above)
    new_conversation: bool = False  # this statement created the conversation
    previous_status: str | None = None  # before the bump (None: the thread is new)


def _pending(source, platform: str, inbound: Inbound) -> _Pending:
    message = Message(
        direction=Message.Direction.INBOUND,
        external_id=str(inbound.external_message_id),
        sender_name=inbound.sender.name[:200],
        sender_address=inbound.sender.address[:255],
        body=inbound.body,
        status=Message.Status.RECEIVED,
        metadata=inbound.metadata or {},
    )
    thread = _Thread(
        source,
        platform,
        str(inbound.external_thread_id),
        inbound.sender,
        _client_identity(inbound.sender),
        inbound.subject,
        inbound.notice,
    )
    return _Pending(message, inbound.received_at or timezone.now(), thread, inbound.attachments)


def _one_sender_per_thread(pending: list[_Pending]) -> bool:
    """Whether every thread of these messages has one sender identity. Only then may their
    first statements run in one pipeline: a thread's messages then all find their thread
    and client, or all miss them and are created after, in order. Two senders in one thread
    (a mail thread), one known and one not, would store the known one's later message first."""
    identities: dict[str, tuple] = {}
    for item in pending:
        identity = tuple(item.thread.identity.items())
        if identities.setdefault(item.thread.external_thread_id, identity) != identity:
            return False
    return True


def _create_missing(using, item: _Pending, stored: _Stored) -> _Stored:
    """The usual case, a known thread from a known client, is ONE statement (find the
    conversation and the client, insert the message, bump the conversation); a new thread or
    client takes a second one that also creates them. In autocommit each statement is its
    own transaction: no BEGIN/COMMIT round trips, one WAL flush per stored message."""
    attempts = 0
    while stored.conversation_id is None or not stored.client_known:
        # Create what is missing. A concurrent ingest creating the same client or thread
        # makes ours do nothing (the unique constraints wait for it to commit): the next
        # statement sees its rows.
        if attempts == 3:
            raise RuntimeError(
                f"ingest: {item.thread.platform} thread or client could not be created"
            )
        attempts += 1
        stored = _store_inbound(using, item, create=True)
    return stored


def _ingested(source, platform: str, using, item: _Pending, stored: _Stored) -> IngestResult:
    """The result of a message's statements, and what follows from it (after commit: its
    events, signals and notifications)."""
    message, notice = item.message, item.thread.notice
    if stored.conversation is None:
        existing = Message.objects.get(
            conversation_id=stored.conversation_id, external_id=message.external_id
        )
        conversation = Conversation.objects.get(pk=stored.conversation_id)
        logger.info("ingest: duplicate %s message conversation=%s", platform, conversation.pk)
        return IngestResult(existing, conversation, created=False)
    conversation = stored.conversation
    conversation.source = source  # what receivers after commit ask for (no query each)
    message.conversation = conversation
    # After commit: at once here in autocommit, at the caller's commit inside its transaction.
    events.publish("message.created", message_payload(message), conversation=conversation)
    events.publish(
        "conversation.updated", conversation_payload(conversation), conversation=conversation
    )
    if stored.new_conversation:
        transaction.on_commit(
            lambda: conversation_created.send_robust(
                sender=Conversation, conversation=conversation, company_id=source.company_id
            ),
            using=using,
        )
    if stored.previous_status not in (None, conversation.status):
        # The customer's message woke a snoozed (or reopened a pending/closed) conversation.
        publish_status_changed(conversation, stored.previous_status, actor=None)
    if notice:
        logger.info("ingest: stored %s notice=%s", platform, message.pk)
        return IngestResult(message, conversation, created=True)
    transaction.on_commit(
        lambda: inbound_message_stored.send(
            sender=Message,
            message_id=message.pk,
            conversation_id=conversation.pk,
            company_id=source.company_id,
            platform=platform,
        ),
        using=using,
    )
    logger.info(
        "ingest: stored %s message=%s conversation=%s source=%s",
        platform,
        message.pk,
        conversation.pk,
        source.pk,
    )
    return IngestResult(message, conversation, created=True)


def _atomic_unless_autocommit(using, several_statements: bool = False):
    """Nothing around one statement in autocommit (it is its own transaction); inside a
    caller's transaction nothing either: no savepoint round trips per message (an importer
    runs one transaction per mail), and a failure fails the caller's transaction. Several
    statements (messages, attachments) are one transaction."""
    connection = connections[using]
    if connection.get_autocommit() and not connection.in_atomic_block and not several_statements:
        return nullcontext()
    return transaction.atomic(using=using, savepoint=False)


CLIENT_IDENTITIES = ("telegram_user_id", "phone", "email")  # the order clients are found by


@lru_cache(maxsize=4096)
def _normalized_phone(phone: str) -> str:
    return Client._meta.get_field("phone").get_prep_value(phone)


def _client_identity(sender: Sender) -> dict:
    """The sender's identities as stored, in CLIENT_IDENTITIES order (the order clients are
    found by, here and in the ingest statement)."""
    identity = {}
    if sender.telegram_user_id not in (None, ""):
        identity["telegram_user_id"] = int(sender.telegram_user_id)
    if sender.phone:
        identity["phone"] = str(_normalized_phone(sender.phone))
    if email := sender.email.strip().lower():
        identity["email"] = email
    return identity


@lru_cache(maxsize=8)
def _insert_fields(model, computed: str = "") -> tuple:
    """The fields an INSERT of `model` gives values for, but `computed` (filled by SQL)."""
    return tuple(
        field
        for field in model._meta.local_concrete_fields
        if not field.primary_key and field.name != computed
    )


def _insert_sql(model, select: str, computed: str = "", expression: str = "") -> str:
    """INSERT INTO model's table (every field) SELECT a parameter for each field, but
    `computed`'s value is the SQL `expression`, `select` (FROM/WHERE) after it."""
    quote = connections[router.db_for_write(model)].ops.quote_name
    fields = _insert_fields(model)
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(expression if field.name == computed else "%s" for field in fields)
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) SELECT {values} {select}"


def _taken_as_is(field) -> Callable[[object], bool]:
    """Which values of `field` go to PostgreSQL as they are, skipping Django's conversion (a
    message's 17 fields through it cost ~16 µs of each ingest, bench/ingest.py): NULL, and a
    str for a text column (a choices member is one too), which Django hands back unchanged;
    never for a field a save fills in. (Django wraps integers in the column's own type.)"""
    filled_on_save = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    if filled_on_save or isinstance(field, models.FileField):
        return lambda value: False
    if type(field) in (models.CharField, models.TextField):
        return lambda value: value is None or isinstance(value, str)
    return lambda value: value is None


@lru_cache(maxsize=8)
def _insert_converters(model, computed: str = "") -> tuple:
    """(attname, _taken_as_is, field) for each of _insert_fields(model, computed)."""
    return tuple(
        (field.attname, _taken_as_is(field), field) for field in _insert_fields(model, computed)
    )


def _insert_params(instance, connection, computed: str = "") -> list:
    """The values of `instance` for _insert_sql, as the database takes them (fills
    auto_now/auto_now_add fields like a save would)."""
    params = []
    values = instance.__dict__
    for attname, taken_as_is, field in _insert_converters(type(instance), computed):
        value = values.get(attname)
        if not taken_as_is(value):
            value = field.pre_save(instance, True)
            if value is not None:
                value = field.get_db_prep_save(value, connection)
        params.append(value)
    return params


@lru_cache(maxsize=64)
def _store_inbound_sql(identity_keys: tuple[str, ...], create: bool) -> str:
    """Insert one inbound message unless it is already stored, and bump its conversation
    (last message time/preview never move back; unread +1; reopened), in one statement.

    The conversation is found by (platform, source id, external thread id); the client by the first of
    `identity_keys` that matches (CLIENT_IDENTITIES order), and with identities the message
    goes in only if there is one. `create`: a missing client and conversation are inserted
    by the same statement (ON CONFLICT DO NOTHING: one a concurrent ingest just created
    leaves ours without them, and the caller runs the statement again)."""
    quote = connections[router.db_for_write(Message)].ops.quote_name
    conversation_table = quote(Conversation._meta.db_table)
    ctes = [
        f"conv_found AS (SELECT id, status FROM {conversation_table} "  # noqa: S608
        "WHERE platform = %s AND source_id = %s AND external_thread_id = %s)"
    ]
    if identity_keys:
        client_table = quote(Client._meta.db_table)
        lookups = []
        for key in identity_keys:
            column = quote(Client._meta.get_field(key).column)
            # Phone and email are unique only where not blank (partial indexes): say so, or a
            # generic plan of the prepared statement could not use those indexes.
            blank = f" AND {column} <> ''" if key in ("phone", "email") else ""
            lookups.append(
                f"(SELECT id FROM {client_table} "  # noqa: S608
                f"WHERE company_id = %s AND {column} = %s{blank})"
            )
        ctes.append(f"client_found AS (SELECT COALESCE({', '.join(lookups)}) AS id)")
        client_ok = "client.id IS NOT NULL"
    else:
        ctes.append("client_found AS (SELECT NULL::bigint AS id)")
        client_ok = "TRUE"
    returned = ", ".join(quote(field.column) for field in Conversation._meta.concrete_fields)
    if create:
        if identity_keys:
            insert_client = _insert_sql(
                Client, "WHERE (SELECT id FROM client_found) IS NULL ON CONFLICT DO NOTHING"
            )
            ctes.append(f"client_new AS ({insert_client} RETURNING id)")
            ctes.append(
                "client AS (SELECT COALESCE((SELECT id FROM client_found), "
                "(SELECT id FROM client_new)) AS id)"
            )
        else:
            ctes.append("client AS (SELECT id FROM client_found)")
        # Created already counting the message (the statement's own UPDATE below cannot
        # see a row it inserted).
        insert_conversation = _insert_sql(
            Conversation,
            f"FROM client WHERE {client_ok} AND NOT EXISTS (SELECT 1 FROM conv_found) "  # noqa: S608
            "ON CONFLICT DO NOTHING",
            computed="client",
            expression="client.id",
        )
        ctes.append(f"conv_new AS ({insert_conversation} RETURNING {returned})")
        ctes.append("conv AS (SELECT id FROM conv_found UNION ALL SELECT id FROM conv_new)")
        new_row = f" UNION ALL SELECT {returned} FROM conv_new"  # noqa: S608
        is_new = "EXISTS (SELECT 1 FROM conv_new)"
    else:
        ctes.append("client AS (SELECT id FROM client_found)")
        ctes.append("conv AS (SELECT id FROM conv_found)")
        new_row = ""
        is_new = "FALSE"
    insert_message = _insert_sql(
        Message,
        f"FROM conv, client WHERE {client_ok} ON CONFLICT DO NOTHING",
        computed="conversation",
        expression="conv.id",
    )
    ctes.append(f"inserted AS ({insert_message} RETURNING id, conversation_id)")
    bumped_columns = ", ".join(
        f"c.{quote(field.column)}" for field in Conversation._meta.concrete_fields
    )
    ctes.append(
        f"""bumped AS (
            UPDATE {conversation_table} AS c SET
                last_message_at = GREATEST(c.last_message_at, %s),
                last_inbound_at = GREATEST(c.last_inbound_at, %s),
                last_message_preview = CASE WHEN c.last_message_at <= %s THEN %s
                                            ELSE c.last_message_preview END,
                unread_count = c.unread_count + %s,
                status = %s,
                snoozed_until = NULL,
                updated_at = %s
            FROM inserted WHERE c.id = inserted.conversation_id
            RETURNING {bumped_columns}
        )"""  # noqa: S608
    )
    with_clause = ",\n        ".join(ctes)
    return f"""
        WITH {with_clause}
        SELECT (SELECT id FROM conv), {client_ok}, inserted.id, {is_new},
               (SELECT status FROM conv_found), stored.*
        FROM client LEFT JOIN inserted ON TRUE
        LEFT JOIN (SELECT {returned} FROM bumped{new_row}) AS stored ON inserted.id IS NOT NULL
    """  # noqa: S608 (names from the models' meta; every value is a parameter)


_CONVERSATION_ATTNAMES = [field.attname for field in Conversation._meta.concrete_fields]


def _store_inbound(using, item: _Pending, *, create=False) -> _Stored:
    """Run `_store_inbound_sql` for `item` (sets its message's pk when stored)."""
    sql, params = _store_inbound_statement(using, item, create)
    with prepared_cursor(using) as cursor:  # planned once per connection, not per message
        cursor.execute(sql, params)
        return _stored(using, item, cursor.fetchone())


def _store_pipelined(using, pending: list[_Pending]) -> list[_Stored]:
    """_store_inbound (without `create`) for each of `pending`, their statements sent in one
    pipeline and their rows read after the last (call it inside a transaction)."""
    connection = connections[using]
    cursors = []
    try:
        with connection.wrap_database_errors, connection.connection.pipeline():
            for item in pending:
                cursors.append(prepared_cursor(using, own=True))
                cursors[-1].execute(*_store_inbound_statement(using, item, False))
            return [
                _stored(using, item, cursor.fetchone())
                for item, cursor in zip(pending, cursors, strict=True)
            ]
    finally:
        for cursor in cursors:
            cursor.close()


def _store_inbound_statement(using, item: _Pending, create: bool) -> tuple[str, list]:
    connection = connections[using]
    message, received_at, thread = item.message, item.received_at, item.thread
    source, identity = thread.source, thread.identity
    params = [thread.platform, source.pk, thread.external_thread_id]
    for value in identity.values():
        params += [source.company_id, value]
    preview = message.body[:PREVIEW_LENGTH]
    if create:
        if identity:
            client = Client(
                company_id=source.company_id,
                name=thread.sender.name[:200],
                telegram_username=thread.sender.telegram_username[:64],
                **identity,
            )
            params += _insert_params(client, connection)
        conversation = Conversation(
            company_id=source.company_id,
            platform=thread.platform,
            external_thread_id=thread.external_thread_id,
            subject=thread.subject[:500],
            status=Conversation.Status.OPEN,
            last_message_at=received_at,
            last_inbound_at=received_at,
            last_message_preview=preview,
            unread_count=0 if thread.notice else 1,
            source_id=source.pk,
        )
        params += _insert_params(conversation, connection, computed="client")
    params += _insert_params(message, connection, computed="conversation")
    # last_message_at, last_inbound_at, the preview's condition, preview, unread added, ...
    params += [received_at, received_at, received_at, preview, 0 if thread.notice else 1]
    params += [Conversation.Status.OPEN, timezone.now()]
    return _store_inbound_sql(tuple(identity), create), params


def _stored(using, item: _Pending, row) -> _Stored:
    found_id, client_ok, message_id, is_new, previous_status, *conversation_row = row
    if message_id is None:
        return _Stored(found_id, bool(client_ok), None)
    message = item.message
    message.pk = message_id
    message.conversation_id = found_id
    message._state.adding = False
    message._state.db = using
    conversation = Conversation.from_db(using, _CONVERSATION_ATTNAMES, conversation_row)
    return _Stored(found_id, True, conversation, bool(is_new), previous_status)


def _find_client(company_id: int, identity: dict) -> Client | None:
    """The company's client with the first of these identities (CLIENT_IDENTITIES order)."""
    for key, value in identity.items():
        client = Client.objects.filter(company_id=company_id, **{key: value}).first()
        if client is not None:
            return client
    return None


def _create_client(company_id: int, sender: Sender, identity: dict) -> Client | None:
    """Create the sender's client (the caller found none), or read the one a concurrent
    ingest created a moment ago (the unique constraints turned our insert away)."""
    client = Client(
        company_id=company_id,
        name=sender.name[:200],
        telegram_username=sender.telegram_username[:64],
        **identity,
    )
    if insert_unless_conflict(client):
        return client
    return _find_client(company_id, identity)


def _create_conversation(
    source, platform, external_thread_id, client_id, subject, received_at
) -> Conversation:
    """Create the conversation of this source and thread (the caller found none), or read the
    one a concurrent ingest created a moment ago."""
    lookup = {
        "platform": platform,
        "source_id": source.pk,
        "external_thread_id": external_thread_id,
    }
    conversation = Conversation(
        company_id=source.company_id,
        client_id=client_id,
        subject=subject[:500],
        last_message_at=received_at,
        **lookup,
    )
    if not insert_unless_conflict(conversation):
        conversation = Conversation.objects.get(**lookup)
    return conversation


def open_conversation(source, external_thread_id: str, sender: Sender) -> Conversation:
    """The source's conversation with this thread, created (with its client) when we write
    first, e.g. a message sent to a phone number through the API."""
    platform = _live_channel(source).platform
    lookup = {
        "platform": platform,
        "source_id": source.pk,
        "external_thread_id": external_thread_id,
    }
    conversation = Conversation.objects.filter(**lookup).first()
    if conversation is not None:
        return conversation
    identity = _client_identity(sender)
    with transaction.atomic():
        client = _find_client(source.company_id, identity) if identity else None
        if client is None and identity:
            client = _create_client(source.company_id, sender, identity)
        return _create_conversation(
            source, platform, external_thread_id, client.pk if client else None, "", timezone.now()
        )


def _bump_conversation_for_outbound(
    conversation_id: int, body: str, at: datetime, *, by_agent: bool = False
):
    """Move last-message time/preview forward (never back); inbound messages are bumped by
    the ingest statement (_store_inbound_sql), which also counts them unread. An agent's
    first reply after the client wrote is the conversation's first response (reports)."""
    preview = Value(body[:PREVIEW_LENGTH])
    changes = {
        "last_message_at": Greatest(F("last_message_at"), Value(at)),
        "last_message_preview": Case(
            When(last_message_at__lte=at, then=preview),
            default=F("last_message_preview"),
        ),
        "updated_at": timezone.now(),
    }
    if by_agent:
        changes["first_response_at"] = Case(
            When(first_response_at__isnull=True, last_inbound_at__isnull=False, then=Value(at)),
            default=F("first_response_at"),
        )
    Conversation.objects.filter(pk=conversation_id).update(**changes)
    return Conversation.objects.get(pk=conversation_id)


def _inbound_messages_of(source, external_ids, thread_id=None):
    lookup = {
        "conversation__platform": channels.for_source(source).platform,
        "conversation__source_id": source.pk,
        "direction": Message.Direction.INBOUND,
        "external_id__in": list(external_ids),
    }
    if thread_id is not None:
        lookup["conversation__external_thread_id"] = thread_id
    return Message.objects.select_for_update().filter(**lookup).select_related("conversation")


def record_inbound_edit(source, thread_id: str, external_id: str, body: str) -> bool:
    """The sender edited a message: the new text replaces the old, marked edited; the earlier
    versions are kept in its metadata ("edits": [{"body", "until"}], oldest first). An edit
    of a message we do not have changes nothing (never a new message)."""
    with transaction.atomic():
        message = _inbound_messages_of(source, [external_id], thread_id).first()
        if message is None or message.body == body or message.metadata.get("deleted"):
            return False
        now = timezone.now().isoformat()
        edits = [*message.metadata.get("edits", []), {"body": message.body, "until": now}]
        message.body = body
        message.metadata = {**message.metadata, "edited_at": now, "edits": edits[-20:]}
        message.save(update_fields=["body", "metadata"])
        events.publish(
            "message.updated", message_payload(message), conversation=message.conversation
        )
    logger.info("ingest: message=%s edited by its sender", message.pk)
    return True


def mark_inbound_deleted(source, external_ids: list[str], thread_id: str | None = None) -> int:
    """The sender deleted messages: they stay in the history, marked deleted ("This message
    was deleted" in the thread). Their text stays in the row for admins (the page shows it to
    admins only, folded; the API's body is empty for a deleted message)."""
    count = 0
    with transaction.atomic():
        for message in _inbound_messages_of(source, external_ids, thread_id):
            if message.metadata.get("deleted"):
                continue
            message.metadata = {
                **message.metadata,
                "deleted": True,
                "deleted_at": timezone.now().isoformat(),
            }
            message.save(update_fields=["metadata"])
            events.publish(
                "message.updated", message_payload(message), conversation=message.conversation
            )
            _hide_deleted_preview(message)
            count += 1
    if count:
        logger.info("ingest: %s messages deleted by their sender", count)
    return count


def _hide_deleted_preview(message: Message) -> None:
    """The conversation list must not keep showing a deleted message's text: when it is the
    last message, its preview says it was deleted."""
    conversation = message.conversation
    preview = message.body[:PREVIEW_LENGTH]
    if not preview or conversation.last_message_preview != preview:
        return
    conversation.last_message_preview = _("This message was deleted")
    conversation.save(update_fields=["last_message_preview", "updated_at"])
    events.publish(
        "conversation.updated", conversation_payload(conversation), conversation=conversation
    )


# ---------------------------------------------------------------- outbound


def validate_body(platform: str, body: str, *, allow_empty: bool = False) -> str:
    body = (body or "").strip()
    if not body and not allow_empty:
        raise ValidationError({"body": [_("Write a message first.")]})
    limit = channels.get(platform).capabilities.max_text_length
    if len(body) > limit:
        raise ValidationError(
            {
                "body": [
                    _("At most %(limit)d characters on %(platform)s (%(given)d given).")
                    % {"limit": limit, "platform": platform, "given": len(body)}
                ]
            }
        )
    return body


def send_message(
    conversation: Conversation,
    author,
    body: str,
    *,
    bot=None,
    metadata: dict | None = None,
    options: dict | None = None,
    template: dict | None = None,
    files: list | None = None,
    reply_to: Message | None = None,
) -> Message:
    """Store an outbound message as `queued` and hand it to the sender after commit.
    `metadata` may name a message to quote ({"quoted": its external id}); `options` are the
    channel's own reply fields (an email's subject, cc, bcc), checked by the channel and stored
    on the message. `template` ({"name", "language", "variables"}) sends a channel's message
    template instead of free text (its rendering is the stored body); free text outside the
    conversation's reply window (WhatsApp Cloud: 24 hours) is refused. `files` (uploaded
    files) are checked against the channel's limits and stored with the message in the same
    transaction; `reply_to` (a message of this conversation) is quoted where the channel
    quotes. Bad input raises one ValidationError naming every bad field, before anything is
    written.

    An agent's reply (an `author`, no `bot`) to a closed conversation reopens it in the same
    transaction; the returned message's `reopened_conversation` says whether it did.

    The committed row is the truth (an outbox): if the broker is unreachable after commit, the
    request still succeeds and the sweeper queues the message once it is back."""
    errors = {}
    channel = channels.get(conversation.platform)
    source = conversation.source
    files = list(files or [])
    kinds, extra = [], {}
    if template is not None:
        if files:
            errors["files"] = [_("A template is sent on its own, without files.")]
        if (body or "").strip():
            errors["body"] = [_("Send either a text or a template, not both.")]
        else:
            try:
                part = channel.resolve_template(
                    source,
                    template.get("name", ""),
                    template.get("language", ""),
                    template.get("variables"),
                )
            except ValidationError as exc:
                errors.update(exc.message_dict)
            else:
                body = part.rendered
                metadata = {**(metadata or {}), "template": part.as_metadata()}
    else:
        window = reply_window(conversation) if source is not None else None
        if window is not None and not window.is_open:
            errors["body"] = [WINDOW_CLOSED]  # never queued: Meta would refuse it (131047)
        else:
            try:
                body = validate_body(conversation.platform, body, allow_empty=bool(files))
            except ValidationError as exc:
                errors.update(exc.message_dict)
    try:
        extra = channel.reply_metadata(conversation, options or {})
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        kinds = check_outgoing_files(conversation.platform, files)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        extra.update(_quote(conversation, reply_to))
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    metadata = {**(metadata or {}), **extra}
    try:
        if source is None:
            raise SourceInactive("no source")
        _live_channel(source)
    except SourceInactive:
        raise ValidationError(
            {"conversation": [_("This conversation's channel is deactivated; it cannot send.")]}
        ) from None
    stored = []
    try:
        with transaction.atomic():
            now = timezone.now()
            message = Message.objects.create(
                conversation=conversation,
                direction=Message.Direction.OUTBOUND,
                author=author,
                bot=bot,
                sender_name=bot.name if bot else (author.display_name if author else ""),
                body=body,
                status=Message.Status.QUEUED,
                metadata=metadata or {},
                next_attempt_at=now,
            )
            if files:
                store_outgoing_files(message, files, kinds, stored)
            # An agent answering a closed conversation reopens it (the reply box says so).
            message.reopened_conversation = (
                author is not None and bot is None and reopen_for_reply(author, conversation)
            )
            preview = body or ", ".join(attachment.filename for attachment in stored)
            conversation = _bump_conversation_for_outbound(
                conversation.pk,
                preview,
                message.created_at,
                by_agent=author is not None and bot is None,
            )
            _publish_queued(message, conversation)
    except BaseException:
        remove_stored_files([attachment.file.name for attachment in stored])
        raise
    logger.info(
        "outbound: queued message=%s conversation=%s files=%d",
        message.pk,
        conversation.pk,
        len(stored),
    )
    return message


def _quote(conversation: Conversation, reply_to: Message | None) -> dict:
    """What a reply quoting `reply_to` stores: its id and the channel's id of it."""
    if reply_to is None:
        return {}
    channel = channels.get(conversation.platform)
    if reply_to.conversation_id != conversation.pk:
        raise ValidationError({"reply_to": [_("Choose a message of this conversation.")]})
    if not channel.capabilities.quotes:
        raise ValidationError(
            {
                "reply_to": [
                    _("%(channel)s replies cannot quote a message.") % {"channel": channel.label}
                ]
            }
        )
    if not reply_to.external_id:
        raise ValidationError({"reply_to": [_("This message has not reached the channel yet.")]})
    return {"quoted": reply_to.external_id, "quoted_message_id": reply_to.pk}


def _publish_queued(message: Message, conversation: Conversation) -> None:
    """Inside the sending transaction: the events and the delivery go out after commit."""
    events.publish("message.created", message_payload(message), conversation=conversation)
    events.publish(
        "conversation.updated", conversation_payload(conversation), conversation=conversation
    )
    transaction.on_commit(lambda: enqueue_delivery(message.pk), robust=True)


def name_thread_client(conversation: Conversation, name: str) -> bool:
    """A channel learned who writes in a thread whose sender has no identity of ours (a Meta
    user id): the thread gets a client of that name (or its unnamed client the name). False
    when there was nothing to do (no name, or a client with a name already)."""
    name = name.strip()[:200]
    if not name:
        return False
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.client_id is None:
            conversation.client = Client.objects.create(
                company_id=conversation.company_id, name=name
            )
            conversation.save(update_fields=["client", "updated_at"])
        elif not conversation.client.name:
            Client.objects.filter(pk=conversation.client_id).update(name=name)
            conversation.client.name = name
        else:
            return False
        events.publish(
            "conversation.updated",
            conversation_payload(conversation),
            conversation=conversation,
        )
    return True


# ---------------------------------------------------------------- agents' actions


def _save_and_publish(
    conversation: Conversation,
    fields: list[str],
    event: str = "conversation.updated",
    also_tell: tuple = (),
):
    with transaction.atomic():
        conversation.save(update_fields=[*fields, "updated_at"])
        events.publish(
            event,
            conversation_payload(conversation),
            conversation=conversation,
            user_ids=[user_id for user_id in also_tell if user_id is not None],
        )
    return conversation


def assign_conversation(
    actor, conversation: Conversation, assignee, *, notify: bool = True
) -> Conversation:
    """`notify=False`: the caller tells the assignee itself (a bulk assignment tells of all
    its conversations at once, notifications.conversations_assigned)."""
    if assignee is not None and assignee.company_id != conversation.company_id:
        raise ValidationError({"assignee": [_("Choose a member of your company.")]})
    previous = conversation.assignee_id
    conversation.assignee = assignee
    logger.info(
        "conversation=%s assigned to=%s by=%s",
        conversation.pk,
        getattr(assignee, "pk", None),
        actor.pk,
    )
    # The previous assignee hears it too (a restricted agent no longer sees it after this).
    also_tell = (previous,) if previous != getattr(assignee, "pk", None) else ()
    with transaction.atomic():
        conversation = _save_and_publish(
            conversation, ["assignee"], "conversation.assigned", also_tell
        )
        if notify:
            notifications.conversation_assigned(actor, conversation)
    return conversation


def mark_conversation_read(actor, conversation: Conversation) -> Conversation:
    """`actor` is looking at it: its messages are read, and so are the actor's notifications
    about it."""
    notifications.mark_conversation_seen(actor, conversation.pk)
    if conversation.unread_count == 0:
        return conversation
    conversation.unread_count = 0
    return _save_and_publish(conversation, ["unread_count"])
