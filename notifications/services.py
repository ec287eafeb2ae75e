"""Writes for notifications. Triggers elsewhere call `notify_after_commit` (one small call
where the event happens); it stores one row per recipient who wants that kind and pushes
`notification.created` to each of them through messaging.events, after commit. A
notification that cannot be written is logged and never fails what caused it."""

import logging

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Role, User
from crm.db.upsert import prepared_cursor
from messaging import events

from . import selectors
from .models import (
    ADMIN_KINDS,
    UNREAD_COUNTED,
    ConnectionAlert,
    Kind,
    Notification,
    Preference,
)
from .payloads import notification_payload

logger = logging.getLogger(__name__)

SUBJECT_LENGTH = 200
BODY_LENGTH = 300


def about_conversation(conversation) -> dict:
    """What a notification about `conversation` says it is about: its client by name (read by
    notify_each's own statement, no query here), else its subject or thread id; and the link."""
    return {
        "subject": conversation.subject or conversation.external_thread_id,
        "client_id": conversation.client_id,
        "url": conversation_url(conversation.pk),
        "conversation_id": conversation.pk,
    }


def notify(
    kind: str,
    user_ids,
    *,
    company_id: int,
    subject: str = "",
    client_id: int | None = None,
    body: str = "",
    url: str = "",
    conversation_id: int | None = None,
    actor_id: int | None = None,
) -> list[Notification]:
    """Store and push `kind` to those of `user_ids` who are active members of `company_id`,
    are not the actor, and have not muted the kind (a connection's failure: admins only).
    `client_id`: the subject is that client's name (when it has one)."""
    about = {
        "subject": subject,
        "client_id": client_id,
        "body": body,
        "url": url,
        "conversation_id": conversation_id,
    }
    return notify_each(
        kind,
        [{"user_id": user_id, **about} for user_id in set(user_ids)],
        company_id=company_id,
        actor_id=actor_id,
    )


# notify_each's one statement: who of the items' users may be told (an active member of the
# company, not the actor, an admin for ADMIN_KINDS, the kind not muted in their preference),
# their rows inserted in the items' order (the subject: the item's client's name, if any),
# and each recipient's unread count with them. Rows inserted by a statement are not visible to
# its own SELECT, so the count adds them. Prepared once per connection (crm.db.upsert): an
# assigned conversation's every inbound message runs it.
NOTIFY_SQL = """
WITH item AS (
    SELECT * FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[], %s::text[],
                         %s::bigint[])
        WITH ORDINALITY AS t(user_id, subject, client_id, body, url, conversation_id, n)
), recipient AS (
    SELECT u.id FROM accounts_user AS u
    LEFT JOIN notifications_preference AS p ON p.user_id = u.id
    WHERE u.id IN (SELECT user_id FROM item) AND u.company_id = %s AND u.is_active
        AND u.id IS DISTINCT FROM %s::bigint
        AND (NOT %s::boolean OR u.role = %s)
        AND NOT COALESCE(p.muted_kinds @> to_jsonb(%s::text), FALSE)
), inserted AS (
    INSERT INTO notifications_notification
        (company_id, user_id, kind, subject, body, url, conversation_id, actor_id, read_at,
         created_at)
    SELECT %s, item.user_id, %s,
        left(COALESCE(NULLIF((SELECT c.name FROM crm_client AS c
                              WHERE c.id = item.client_id AND c.company_id = %s), ''),
                      item.subject), %s),
        item.body, item.url, item.conversation_id, %s::bigint, NULL, %s
    FROM item JOIN recipient ON recipient.id = item.user_id
    ORDER BY item.n
    RETURNING id, user_id, subject, body, url, conversation_id, created_at
)
SELECT i.*,
    LEAST((SELECT count(*) FROM (SELECT 1 FROM notifications_notification AS n
                                 WHERE n.user_id = i.user_id AND n.read_at IS NULL
                                 LIMIT %s) AS counted)
          + (SELECT count(*) FROM inserted AS mine WHERE mine.user_id = i.user_id), %s)
FROM inserted AS i ORDER BY i.id
"""


def notify_each(
    kind: str, items: list[dict], *, company_id: int, actor_id: int | None = None
) -> list[Notification]:
    """`notify` for many things at once (a bulk assignment: one per conversation), each item
    {user_id, subject, client_id (optional), body, url, conversation_id}, with the same
    checks, in one statement whatever their number (and one more for the actor's name)."""
    if not items:
        return []
    columns = (  # str(): a name may be a lazy translation
        [item["user_id"] for item in items],
        [str(item.get("subject", ""))[:SUBJECT_LENGTH] for item in items],
        [item.get("client_id") for item in items],
        [str(item.get("body", ""))[:BODY_LENGTH] for item in items],
        [str(item.get("url", "")) for item in items],
        [item.get("conversation_id") for item in items],
    )
    params = [
        *columns,
        company_id,
        actor_id,
        kind in ADMIN_KINDS,
        Role.ADMIN,
        kind,
        company_id,
        kind,
        company_id,
        SUBJECT_LENGTH,
        actor_id,
        timezone.now(),
        UNREAD_COUNTED,
        UNREAD_COUNTED,
    ]
    with prepared_cursor() as cursor:
        cursor.execute(NOTIFY_SQL, params)
        found = cursor.fetchall()
    if not found:
        return []
    actor_name = ""
    if actor_id is not None:
        actor = User.objects.filter(pk=actor_id).first()
        actor_name = actor.display_name if actor else ""
    rows, unread = [], {}
    for pk, user_id, subject, body, url, conversation_id, created_at, unread_count in found:
        row = Notification(
            pk=pk,
            company_id=company_id,
            user_id=user_id,
            kind=kind,
            subject=subject,
            body=body,
            url=url,
            conversation_id=conversation_id,
            actor_id=actor_id,
            created_at=created_at,
        )
        row._state.adding = False
        rows.append(row)
        unread[user_id] = unread_count
        events.publish(
            "notification.created",
            notification_payload(row, actor_name=actor_name, unread_count=unread_count),
            user_ids=[user_id],
        )
    logger.info("notifications: %s, %d to %d user(s)", kind, len(rows), len(unread))
    return rows


def notify_after_commit(kind: str, user_ids, **fields) -> None:
    """`notify` once the caller's transaction commits (at once in autocommit); a failure is
    logged, never raised into the caller. Values of `fields` may be callables."""
    user_ids = [user_id for user_id in user_ids if user_id is not None]
    if not user_ids:
        return
    # A callable value is read after commit (e.g. the client's name: no query on the caller's
    # path, such as an inbound message's).
    _after_commit(
        kind,
        lambda: notify(kind, user_ids, **{k: v() if callable(v) else v for k, v in fields.items()}),
    )


def _after_commit(kind: str, send) -> None:
    """`send()` once the caller's transaction commits; a failure is logged, never raised."""

    def run():
        try:
            send()
        except Exception:
            logger.exception("notifications: could not notify kind=%s", kind)

    transaction.on_commit(run, robust=True)


# ---------------------------------------------------------------- triggers (one call each)


def conversation_url(conversation_id: int) -> str:
    return reverse("conversation_detail", args=[conversation_id])


def conversation_assigned(actor, conversation) -> None:
    conversations_assigned(actor, [conversation])


def conversations_assigned(actor, conversations) -> None:
    """Each assignee is told of each conversation given to them, after commit; a bulk
    assignment is one `notify_each`."""
    _tell_assignees(
        Kind.ASSIGNED,
        [(conversation, conversation.last_message_preview) for conversation in conversations],
        actor_id=getattr(actor, "pk", None),
    )


def inbound_in_assigned_conversations(stored: list[tuple]) -> None:
    """The assignees of these (conversation, new message) pairs are told of each message,
    after commit: a webhook batch's messages are one `notify_each`."""
    _tell_assignees(
        Kind.NEW_MESSAGE, [(conversation, message.body) for conversation, message in stored]
    )


def _tell_assignees(kind: str, told: list[tuple], actor_id: int | None = None) -> None:
    """`kind` with its body to the assignee of each (conversation, body) of one company."""
    items = [
        {"user_id": conversation.assignee_id, "body": body, **about_conversation(conversation)}
        for conversation, body in told
        if conversation.assignee_id is not None
    ]
    if not items:
        return
    company_id = told[0][0].company_id
    _after_commit(kind, lambda: notify_each(kind, items, company_id=company_id, actor_id=actor_id))


def send_failed(message, company_id: int) -> None:
    if message.author_id is None:
        return
    # The conversation is read after commit (not on the status path that calls this).
    _after_commit(
        Kind.SEND_FAILED,
        lambda: notify(
            Kind.SEND_FAILED,
            [message.author_id],
            company_id=company_id,
            body=message.error,
            **about_conversation(message.conversation),
        ),
    )


def mentioned(note, conversation, user_ids) -> None:
    notify_after_commit(
        Kind.MENTIONED,
        user_ids,
        company_id=conversation.company_id,
        body=note.body,
        **about_conversation(conversation),
        actor_id=note.author_id,
    )


def _tell_admins(kind: str, company_id: int, name, body: str = "", url="") -> None:
    """A notification of `kind` about one of the company's connections, to its active admins."""
    admins = User.objects.filter(company_id=company_id, role=Role.ADMIN, is_active=True)
    notify_after_commit(
        kind,
        list(admins.values_list("pk", flat=True)),
        company_id=company_id,
        subject=name,
        body=body,
        url=url or (lambda: reverse("settings")),
    )


def connection_waiting(company_id: int, name: str, url: str = "") -> None:
    """The company's admins: a connection (`name`) waits because no connection host has room.
    Called once per waiting episode by the fleet's supervisor, for every kind of connection."""
    _tell_admins(Kind.CONNECTION_WAITING, company_id, name, url=url)


def notify_connection_failed(company_id: int, key: str, name, error: str, url: str = "") -> bool:
    """A connection of the company failed (any kind: a WhatsApp session or Cloud number, a
    Telegram account, a mailbox's IMAP or SMTP, a Meta page): its admins are told once per
    failure episode, i.e. not again on each retry, until `connection_healthy(key)`. `key`
    names the connection ("telegram:account:5"); `name` (or a callable giving it, read after
    commit) is what they read. True when told now. Never raises into the caller."""
    try:
        with transaction.atomic():
            _alert, created = ConnectionAlert.objects.get_or_create(
                key=key[:120], defaults={"company_id": company_id, "error": error[:300]}
            )
    except IntegrityError:  # the same failure recorded a moment ago by another worker
        return False
    except Exception:
        logger.exception("notifications: could not record the failure of %s", key)
        return False
    if created:
        logger.info(
            "notifications: connection %s failed; admins of company=%s told", key, company_id
        )
        _tell_admins(Kind.CONNECTION_FAILED, company_id, name, body=error, url=url)
    return created


def connection_healthy(key: str) -> None:
    """The connection works again: its failure episode ends (the next failure is told)."""
    try:
        ConnectionAlert.objects.filter(key=key[:120]).delete()
    except Exception:
        logger.exception("notifications: could not clear the failure of %s", key)


# ---------------------------------------------------------------- the reader's actions


def mark_read(user, notification: Notification) -> Notification:
    if notification.read_at is None:
        notification.read_at = timezone.now()
        with transaction.atomic():
            notification.save(update_fields=["read_at"])
            _publish_read(user, [notification.pk])
    return notification


def mark_all_read(user) -> int:
    return _mark_read(user, selectors.unread_of(user.pk))


def mark_conversation_seen(user, conversation_id: int) -> int:
    """The user opened the conversation: what told them about it is read, so the bell counts
    what still waits for them (not every message they have since answered)."""
    return _mark_read(
        user,
        selectors.unread_of(user.pk).filter(conversation_id=conversation_id),
    )


def _mark_read(user, unread) -> int:
    """Mark `unread` (the user's) read; their tabs' bells follow. Returns how many."""
    ids = list(unread.values_list("pk", flat=True))
    if ids:
        with transaction.atomic():
            Notification.objects.filter(pk__in=ids, read_at=None).update(read_at=timezone.now())
            _publish_read(user, ids)
    return len(ids)


def _publish_read(user, ids: list[int]) -> None:
    """Every tab of this user updates its bell."""
    unread = selectors.unread_count(user)
    events.publish("notification.read", {"ids": ids, "unread_count": unread}, user_ids=[user.pk])


def update_preferences(user, *, muted_kinds=None, sound=None) -> Preference:
    """Bad kinds are a ValidationError naming `muted_kinds`; nothing is saved then."""
    preference = Preference.objects.filter(user=user).first() or Preference(
        user=user, company_id=user.company_id
    )
    if muted_kinds is not None:
        unknown = [kind for kind in muted_kinds if kind not in Kind.values]
        if unknown:
            raise ValidationError(
                {
                    "muted_kinds": [
                        _("Unknown kinds: %(kinds)s. Choose from: %(choices)s.")
                        % {"kinds": ", ".join(map(str, unknown)), "choices": ", ".join(Kind.values)}
                    ]
                }
            )
        preference.muted_kinds = sorted(set(muted_kinds))
    if sound is not None:
        preference.sound = bool(sound)
    preference.save()
    return preference
