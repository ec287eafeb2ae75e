"""Broadcasts: create (validated, recipients bulk-inserted), cancel, and the sending loop.

Sending is at most once per recipient. A worker claims one recipient with a conditional
UPDATE (pending and unclaimed -> `claimed_at` set, committed) before it calls the provider,
and records the outcome conditionally on its own claim. A duplicate task, a second worker or a
redelivered message finds the row claimed and moves on. A claim that never got an outcome (the
worker died between the provider's accept and our commit) is marked `unknown` once it is older
than a grace period, and is never retried automatically: we cannot tell whether it was sent.

Pacing: at most settings.BROADCAST_RATE_PER_MINUTE sends per number in any 60 seconds, counted
in Redis (a sliding-window log, one Lua script), shared by every worker. A batch that finds the
window full stops and asks to run again in a few seconds; nothing waits on a long ETA, and
scheduled broadcasts are started by beat (`dispatch_broadcasts`), not by Celery countdowns.

A broadcast goes out from a WhatsApp number or from the company's sandbox (the test channel,
whose recipients are its pretend customers): the same create, claims, pacing and send policy,
each source's channel building the route. Recipients' delivered/read come from the channel's
far end (`record_recipient_status`; the sandbox's customer page).

A deactivated (or being-deleted) number pauses its broadcasts: recipients stay pending and
the broadcast keeps its status (`scheduled` or `sending`); reactivating the number resumes
them, cancelling stops them for good.

Each recipient is sent by the one send policy (messaging.sending): the same claim, attempt
count, record of the send under its own key ("broadcast-recipient:<id>"), retries and failure
words as every other send; the number's channel builds its route (Cloud API credentials or its
QR-linked session), exactly as for an inbox reply.

Tunables (settings, from the environment; see .env.example): BROADCAST_RATE_PER_MINUTE,
BROADCAST_LEASE_SECONDS, SEND_CLAIM_STALE_SECONDS, SEND_MAX_ATTEMPTS.
"""

import contextlib
import logging
import time
from dataclasses import dataclass

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from crm import coordination
from crm.celery import task
from crm.models import Client
from crm.vocabulary import label_for
from messaging import channels, events, sending
from messaging.channels import OutboundMessage
from messaging.models import Conversation
from messaging.sending import Outbox

from ..models import Broadcast, BroadcastRecipient, WhatsAppNumber
from ..sandbox import PLATFORM as SANDBOX
from ..sandbox.models import SandboxInbox
from . import templates

logger = logging.getLogger(__name__)

TEXT_MAX_LENGTH = 4096
INSERT_BATCH_SIZE = 1000
BATCH_SIZE = 20  # recipients per batch task, at most
BATCH_SECONDS = 10.0  # ... and at most this long, so progress is published often
MAX_REQUEUE_SECONDS = 15.0  # a batch never asks to wait longer than this (no long ETAs)
IN_FLIGHT_RECHECK_SECONDS = 5.0

Status = Broadcast.Status
RStatus = BroadcastRecipient.Status
# Recipient statuses that mean "the provider accepted it".
SENT_STATUSES = (RStatus.SENT, RStatus.DELIVERED, RStatus.READ)
ACTIVE_STATUSES = (Status.SCHEDULED, Status.SENDING)
CANCELLABLE_STATUSES = (Status.DRAFT, Status.SCHEDULED, Status.SENDING)

RECIPIENTS = Outbox(
    BroadcastRecipient, namespace="broadcast-recipient", pending={"status": RStatus.PENDING}
)


def lease_seconds() -> float:
    return float(settings.BROADCAST_LEASE_SECONDS)


def rate_per_minute() -> int:
    return max(1, int(settings.BROADCAST_RATE_PER_MINUTE))


# ---------------------------------------------------------------- create


@dataclass(frozen=True)
class InvalidLine:
    line: int  # 1-based, as the user sees it
    value: str
    reason: str

    def __str__(self):
        return f"Line {self.line}: “{self.value}” — {self.reason}"


_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: (
        "no country code; write it in international format, e.g. +4915123456789"
    ),
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


def parse_phone_lines(text: str) -> tuple[list[str], list[InvalidLine]]:
    """Pasted phone numbers, one per line -> (E.164 numbers in order, invalid lines).

    Blank lines are skipped; a leading 00 counts as +. Duplicates are kept here (merged later).
    """
    phones, invalid = [], []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        value = raw.strip().strip(",;").strip()
        if not value:
            continue
        candidate = "+" + value[2:] if value.startswith("00") else value
        try:
            parsed = phonenumbers.parse(candidate, None)
        except phonenumbers.NumberParseException as exc:
            reason = _PARSE_REASONS.get(exc.error_type, "not a phone number")
            if exc.error_type == exc.INVALID_COUNTRY_CODE and candidate.startswith("+"):
                reason = "unknown country code"
            invalid.append(InvalidLine(number, value[:64], reason))
            continue
        if not phonenumbers.is_valid_number(parsed):
            invalid.append(InvalidLine(number, value[:64], "not a valid number for its country"))
            continue
        phones.append(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return phones, invalid


def _validate_text(text: str, errors: dict) -> None:
    if not (text or "").strip():
        errors["text"] = ["Write the message text."]
    elif len(text) > TEXT_MAX_LENGTH:
        errors["text"] = [
            f"A broadcast message has at most {TEXT_MAX_LENGTH} characters (this one has "
            f"{len(text)})."
        ]


def _validate_number(actor, number, errors: dict) -> None:
    if isinstance(number, SandboxInbox):
        if number.company_id != actor.company_id:
            errors["sandbox"] = ["Choose your company's sandbox."]
        elif not number.is_active:
            errors["sandbox"] = ["The sandbox is switched off; switch it on to broadcast."]
        return
    if number is None or number.company_id != actor.company_id:
        errors["number"] = ["Choose a WhatsApp number of your company."]
    elif number.status == WhatsAppNumber.Status.DELETING:
        errors["number"] = ["This number is being deleted."]
    elif not number.is_active:
        errors["number"] = ["This number is deactivated; reactivate it to broadcast from it."]


def sandbox_customers(sandbox: SandboxInbox):
    """The sandbox's pretend customers: the clients of its conversations."""
    return Client.objects.filter(
        company_id=sandbox.company_id,
        pk__in=Conversation.objects.filter(platform=SANDBOX, source_id=sandbox.pk).values(
            "client_id"
        ),
    )


def _recipients_from_clients(actor, all_clients, client_ids, errors, clients=None):
    """phone -> client id, from the company's clients (or those of `clients`)."""
    if clients is None:
        clients = Client.objects.filter(company_id=actor.company_id)
    found: dict[str, int] = {}
    if all_clients:
        for client_id, phone in clients.exclude(phone="").values_list("id", "phone").iterator():
            found.setdefault(str(phone), client_id)
    wanted = {int(client_id) for client_id in client_ids or ()}
    if wanted:
        rows = {
            row[0]: row for row in clients.filter(pk__in=wanted).values_list("id", "phone", "name")
        }
        unknown = sorted(wanted - rows.keys())
        without_phone = [row[2] or f"#{row[0]}" for row in rows.values() if not row[1]]
        messages = []
        if unknown:
            messages.append("Unknown clients: " + ", ".join(f"#{pk}" for pk in unknown) + ".")
        if without_phone:
            messages.append("These clients have no phone number: " + ", ".join(without_phone))
        if messages:
            errors["clients"] = messages
        for client_id, phone, _name in rows.values():
            if phone:
                found.setdefault(str(phone), client_id)
    return found


def _link_clients(company_id, phones: list[str]) -> dict[str, int]:
    """Pasted phones that belong to a client of the company -> that client's id."""
    linked = {}
    for start in range(0, len(phones), INSERT_BATCH_SIZE):
        chunk = phones[start : start + INSERT_BATCH_SIZE]
        rows = Client.objects.filter(company_id=company_id, phone__in=chunk)
        linked.update({str(phone): pk for pk, phone in rows.values_list("id", "phone")})
    return linked


def _outside_window(number: WhatsAppNumber, phones: list[str]) -> int:
    """How many of `phones` have not written to `number` within its reply window (Cloud: 24
    h): free text to them would be refused by Meta (131047)."""
    if isinstance(number, SandboxInbox):
        return 0  # the sandbox has no reply window
    length = channels.get("whatsapp").reply_window(number)
    if length is None:
        return 0
    since = timezone.now() - length
    digits = [phone.lstrip("+") for phone in phones]
    inside: set[str] = set()
    for start in range(0, len(digits), INSERT_BATCH_SIZE):
        chunk = digits[start : start + INSERT_BATCH_SIZE]
        inside.update(
            Conversation.objects.filter(
                platform="whatsapp",
                source_id=number.pk,
                external_thread_id__in=chunk,
                last_inbound_at__gt=since,
            ).values_list("external_thread_id", flat=True)
        )
    return sum(1 for value in digits if value not in inside)


def _check_template(number, template: dict, errors: dict) -> dict | None:
    """A template broadcast's choice, checked: {"name", "language", "variables"} with each
    variable {"kind": "text"|"client_name", "text"}; None (and `errors`) when it is bad."""
    if number is None or "number" in errors or "sandbox" in errors:
        return None
    if isinstance(number, SandboxInbox) or number.provider != WhatsAppNumber.Provider.CLOUD:
        errors["template"] = [_("Only Cloud API numbers send templates; send text instead.")]
        return None
    specs = template.get("variables") or {}
    problems = []
    sample = {}
    if not isinstance(specs, dict):
        problems.append(_("Give the variables per component, e.g. {“body”: [...]}"))
        specs = {}
    for kind, values in specs.items():
        sample[kind] = []
        for position, spec in enumerate(values if isinstance(values, list) else [None], 1):
            kind_of = spec.get("kind") if isinstance(spec, dict) else None
            text = (spec.get("text") or "").strip() if isinstance(spec, dict) else ""
            if kind_of not in VARIABLE_KINDS:
                problems.append(
                    _("%(component)s {{%(n)d}}: a fixed text or the client's name.")
                    % {"component": kind, "n": position}
                )
            elif not text:
                problems.append(
                    _(
                        "%(component)s {{%(n)d}}: write the text (for the client's name: what to "
                        "use when a client has none)."
                    )
                    % {"component": kind, "n": position}
                )
            sample[kind].append(text or "x")
    if problems:
        errors["template.variables"] = problems
        return None
    try:
        part = templates.resolve(
            number, template.get("name", ""), template.get("language", ""), sample
        )
    except ValidationError as exc:
        errors.update(exc.message_dict)
        return None
    normalized = {
        kind: [{"kind": spec["kind"], "text": spec["text"].strip()} for spec in values]
        for kind, values in specs.items()
    }
    return {"name": part.name, "language": part.language, "variables": normalized}


VARIABLE_KINDS = ("text", "client_name")


def recipient_template(number, broadcast: Broadcast, client_name: str | None):
    """The template part of one recipient: fixed texts as they are, "client_name" variables
    from the recipient's client (its fallback text when there is none)."""
    values = {
        kind: [
            ((client_name or "").strip() or spec["text"])
            if spec["kind"] == "client_name"
            else spec["text"]
            for spec in specs
        ]
        for kind, specs in (broadcast.template_variables or {}).items()
    }
    return templates.resolve(number, broadcast.template_name, broadcast.template_language, values)


def create_broadcast(
    actor,
    *,
    number,
    text: str,
    name: str = "",
    all_clients: bool = False,
    client_ids=(),
    phones: str = "",
    scheduled_at=None,
    template: dict | None = None,
) -> Broadcast:
    """Create a broadcast of actor's company on `number` (a WhatsApp number, or the sandbox:
    then its customers are the only recipients), sending now or at `scheduled_at`.

    Recipients: every client with a phone (`all_clients`), chosen client ids, and/or pasted
    phone numbers (one per line), merged by phone. Any invalid input refuses the whole create
    (nothing is written): a ValidationError names the field, and for pasted phones lists
    every invalid line with its number and the reason.
    """
    errors: dict[str, list[str]] = {}
    _validate_number(actor, number, errors)
    chosen = None
    if template:
        chosen = _check_template(number, template, errors)
    else:
        _validate_text(text, errors)
    if name and len(name) > 200:
        errors["name"] = ["At most 200 characters."]
    now = timezone.now()
    if scheduled_at is not None and scheduled_at <= now:
        errors["scheduled_at"] = ["Pick a time in the future, or send now."]

    on_sandbox = isinstance(number, SandboxInbox)
    customers = sandbox_customers(number) if on_sandbox and "sandbox" not in errors else None
    if on_sandbox and phones.strip():
        errors["phones"] = ["The sandbox sends only to its customers; choose them instead."]
        phones = ""
    recipients = _recipients_from_clients(actor, all_clients, client_ids, errors, customers)
    pasted, invalid = parse_phone_lines(phones)
    if invalid:
        count = len(invalid)
        errors["phones"] = [
            f"{count} line{'s are' if count != 1 else ' is'} not a valid phone number; "
            "fix or remove them (nothing was created).",
            *(str(line) for line in invalid),
        ]
    if not errors:
        linked = _link_clients(actor.company_id, [p for p in pasted if p not in recipients])
        for phone in pasted:
            recipients.setdefault(phone, linked.get(phone))
        if not recipients:
            errors["recipients"] = [
                "Choose at least one recipient: clients with a phone number, or pasted numbers."
            ]
        elif chosen is None and (outside := _outside_window(number, list(recipients))):
            errors["text"] = [
                _(
                    "%(outside)d of %(total)d recipients are outside the 24-hour window; use a "
                    "template."
                )
                % {"outside": outside, "total": len(recipients)}
            ]
    if errors:
        raise ValidationError(errors)
    if chosen is not None:
        text = _template_preview(number, chosen)

    with transaction.atomic():
        broadcast = Broadcast.objects.create(
            number=None if on_sandbox else number,
            sandbox=number if on_sandbox else None,
            company_id=number.company_id,
            name=name,
            text=text,
            template_name=chosen["name"] if chosen else "",
            template_language=chosen["language"] if chosen else "",
            template_variables=chosen["variables"] if chosen else {},
            created_by=actor if getattr(actor, "pk", None) else None,
            scheduled_at=scheduled_at,
            status=Status.SCHEDULED if scheduled_at else Status.SENDING,
            started_at=None if scheduled_at else now,
        )
        BroadcastRecipient.objects.bulk_create(
            (
                BroadcastRecipient(broadcast=broadcast, phone=phone, client_id=client_id)
                for phone, client_id in recipients.items()
            ),
            batch_size=INSERT_BATCH_SIZE,
        )
        publish_progress(broadcast.pk, number.company_id)
        if broadcast.status == Status.SENDING:
            transaction.on_commit(lambda: kick(broadcast.pk))
    logger.info(
        "broadcast=%s created on source=%s recipients=%d %s by user=%s",
        broadcast.pk,
        number.pk,
        len(recipients),
        f"scheduled_at={scheduled_at.isoformat()}" if scheduled_at else "sending now",
        getattr(actor, "pk", None),
    )
    return broadcast


def _template_preview(number, chosen: dict) -> str:
    """The broadcast's text as shown to the team: the template with its fixed variables
    filled and "[client name]" where each recipient's name goes."""
    label = _("[client name]")
    values = {
        kind: [label if spec["kind"] == "client_name" else spec["text"] for spec in specs]
        for kind, specs in chosen["variables"].items()
    }
    return templates.resolve(number, chosen["name"], chosen["language"], values).rendered[
        :TEXT_MAX_LENGTH
    ]


def kick(broadcast_id: int) -> None:
    """Queue a batch for the broadcast (after commit). Beat kicks again if this is lost."""
    send_broadcast_batch = task("channels_integrations.whatsapp.tasks.send_broadcast_batch")

    try:
        send_broadcast_batch.delay(broadcast_id)
    except Exception:  # the broker is down: dispatch_broadcasts (beat) picks it up later
        logger.exception("broadcast=%s could not be queued; beat will retry", broadcast_id)


# ---------------------------------------------------------------- cancel


def cancel_broadcast(actor, broadcast: Broadcast) -> Broadcast:
    """Stop what has not been sent: unclaimed pending recipients -> cancelled. A send already in
    flight (claimed) keeps its outcome."""
    now = timezone.now()
    with transaction.atomic():
        changed = Broadcast.objects.filter(pk=broadcast.pk, status__in=CANCELLABLE_STATUSES).update(
            status=Status.CANCELLED, finished_at=now
        )
        if not changed:
            broadcast.refresh_from_db(fields=["status"])
            raise ValidationError(
                {
                    "status": [
                        _(
                            "This broadcast is %(status)s; only a scheduled or sending broadcast "
                            "can be cancelled."
                        )
                        % {"status": str(broadcast.get_status_display()).lower()}
                    ]
                }
            )
        cancelled = BroadcastRecipient.objects.filter(
            broadcast_id=broadcast.pk, status=RStatus.PENDING, claimed_at__isnull=True
        ).update(status=RStatus.CANCELLED)
        publish_progress(broadcast.pk, broadcast.company_id)
    broadcast.refresh_from_db()
    logger.info(
        "broadcast=%s cancelled (%d recipients not sent) by user=%s",
        broadcast.pk,
        cancelled,
        getattr(actor, "pk", None),
    )
    return broadcast


# ---------------------------------------------------------------- counts and events


def with_counts(queryset):
    """Annotate broadcasts with recipient counts by outcome (one aggregate per broadcast)."""
    return queryset.annotate(
        total_count=Count("recipients"),
        sent_count=Count("recipients", filter=Q(recipients__status__in=SENT_STATUSES)),
        # Reached the phone (delivered or read), and read, as the far end reports them.
        delivered_count=Count(
            "recipients", filter=Q(recipients__status__in=(RStatus.DELIVERED, RStatus.READ))
        ),
        read_count=Count("recipients", filter=Q(recipients__status=RStatus.READ)),
        failed_count=Count("recipients", filter=Q(recipients__status=RStatus.FAILED)),
        pending_count=Count("recipients", filter=Q(recipients__status=RStatus.PENDING)),
        unknown_count=Count("recipients", filter=Q(recipients__status=RStatus.UNKNOWN)),
        cancelled_count=Count("recipients", filter=Q(recipients__status=RStatus.CANCELLED)),
        done_count=Count(
            "recipients",
            filter=Q(recipients__status__in=[s for s in RStatus.values if s != RStatus.PENDING]),
        ),
    )


def progress(broadcast_id: int) -> dict | None:
    """The `broadcast.progress` payload: counts by outcome and the broadcast's status."""
    row = (
        with_counts(Broadcast.objects.filter(pk=broadcast_id))
        .values(
            "status",
            "total_count",
            "sent_count",
            "delivered_count",
            "read_count",
            "failed_count",
            "pending_count",
            "unknown_count",
            "cancelled_count",
        )
        .first()
    )
    if row is None:
        return None
    return {
        "id": broadcast_id,
        "status": row["status"],
        "status_label": label_for(Broadcast, row["status"]),  # lazy: each reader's language
        "total": row["total_count"],
        "sent": row["sent_count"],
        "delivered": row["delivered_count"],
        "read": row["read_count"],
        "failed": row["failed_count"],
        "pending": row["pending_count"],
        "unknown": row["unknown_count"],
        "cancelled": row["cancelled_count"],
    }


def publish_progress(broadcast_id: int, company_id: int, event: str = "broadcast.progress"):
    data = progress(broadcast_id)
    if data is not None:
        events.publish(event, data, company_id=company_id)
    return data


# Status webhooks move a broadcast's recipients by the thousand per second, and one progress
# count reads all of them (~0.1 s at 100,000 recipients): counted after every batch of the
# webhook inbox, it was most of the drain's time (bench/broadcast_statuses.py).
PROGRESS_SECONDS = 1.0
PROGRESS_TASK = "channels_integrations.whatsapp.tasks.publish_broadcast_progress"


def publish_progress_shortly(broadcast_id: int, company_id: int) -> None:
    """`broadcast.progress` after a committed change, at most once per PROGRESS_SECONDS per
    broadcast: the first change of a window queues one publish (a task) for the window's end,
    and the changes after it within the window need none (that publish counts them all).
    Without Redis or the broker it publishes at once, as every change used to."""
    window = _key(f"progress:{broadcast_id}")
    try:
        if not _redis().set(window, 1, nx=True, px=int(PROGRESS_SECONDS * 1000)):
            return
        task(PROGRESS_TASK).apply_async((broadcast_id, company_id), countdown=PROGRESS_SECONDS)
    except Exception:
        logger.warning("broadcast=%s progress published at once", broadcast_id, exc_info=True)
        with contextlib.suppress(Exception):  # no task will close this window: the next
            _redis().delete(window)  # change publishes at once too
        publish_progress(broadcast_id, company_id)


# ---------------------------------------------------------------- Redis: pacing, lease, attempts


def _redis():
    return coordination.redis_client()


def _key(name: str) -> str:
    return coordination.key(f"broadcast:{name}")


def rate_limit_key(number_id: int) -> str:
    return _key(f"rate:{number_id}")


def acquire_send_slot(number_id: int, per_minute: int | None = None) -> float:
    """Take one send from the number's budget: 0.0 when allowed, else seconds to wait."""
    limit = per_minute or rate_per_minute()
    return coordination.acquire_slot(f"broadcast:rate:{number_id}", limit, 60)


# The chain of batch tasks of one broadcast holds a lease, so beat's re-kicks and duplicate
# messages do not start parallel chains (correctness never depends on it: claims do that).
def take_lease(broadcast_id: int, token: str, seconds: float | None = None) -> bool:
    """Take or renew the broadcast's sending lease for `token`; False if another holds it."""
    seconds = seconds if seconds is not None else lease_seconds()
    return coordination.take_lease(f"broadcast:lease:{broadcast_id}", token, seconds)


def release_lease(broadcast_id: int, token: str) -> None:
    coordination.release_lease(f"broadcast:lease:{broadcast_id}", token)


def lease_held(broadcast_id: int) -> bool:
    return coordination.lease_holder(f"broadcast:lease:{broadcast_id}") is not None


# ---------------------------------------------------------------- dispatch (beat)


def mark_stale_claims_unknown(broadcast_id: int | None = None) -> list[int]:
    """Claims older than SEND_CLAIM_STALE_SECONDS with no outcome: `sent` when the record of
    the send says so, else `unknown` (never retried). Returns the broadcasts that changed."""
    stale = RECIPIENTS.stale_claims()
    if broadcast_id is not None:
        stale = stale.filter(broadcast_id=broadcast_id)
    broadcast_ids = sorted(set(stale.values_list("broadcast_id", flat=True)))
    if not broadcast_ids:
        return []
    RECIPIENTS.settle_stale(
        _record_sent,
        lambda pk, claim: _record(pk, claim, status=RStatus.UNKNOWN, error=sending.UNKNOWN_REASON),
        broadcast_id__in=broadcast_ids,
    )
    logger.warning("broadcast: stale claims settled in broadcasts %s", broadcast_ids)
    for pk, company_id in Broadcast.objects.filter(pk__in=broadcast_ids).values_list(
        "pk", "company_id"
    ):
        publish_progress(pk, company_id)
    return broadcast_ids


def _sendable_numbers():
    """Broadcasts whose source may send: an active number not being deleted, or an active
    sandbox."""
    number = Q(number__is_active=True) & ~Q(number__status=WhatsAppNumber.Status.DELETING)
    return number | Q(sandbox__is_active=True)


def start_due_broadcasts() -> list[int]:
    """Scheduled broadcasts whose time has come -> sending (on active numbers only)."""
    now = timezone.now()
    due = Broadcast.objects.filter(
        _sendable_numbers(), status=Status.SCHEDULED, scheduled_at__lte=now
    ).values_list("pk", "company_id")
    started = []
    for pk, company_id in due:
        if Broadcast.objects.filter(pk=pk, status=Status.SCHEDULED).update(
            status=Status.SENDING, started_at=now
        ):
            started.append(pk)
            publish_progress(pk, company_id)
            logger.info("broadcast=%s scheduled time reached; sending", pk)
    return started


def broadcasts_to_kick() -> list[int]:
    """Sending broadcasts on sendable numbers that no batch chain is working on."""
    ids = Broadcast.objects.filter(_sendable_numbers(), status=Status.SENDING).values_list(
        "pk", flat=True
    )
    return [pk for pk in ids if not lease_held(pk)]


def dispatch() -> list[int]:
    """What beat runs every few seconds: stale claims -> unknown, start due broadcasts, and
    return the sending broadcasts that need a batch task."""
    mark_stale_claims_unknown()
    start_due_broadcasts()
    return broadcasts_to_kick()


# ---------------------------------------------------------------- sending


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    again_in: float | None = None  # run another batch after this many seconds; None: stop
    reason: str = ""


def _record(recipient_id: int, claim, **fields) -> bool:
    """The outcome of our own claim. An `unknown` set meanwhile (the grace period ran out
    while the provider was slow) is replaced by the outcome we now know."""
    return bool(
        BroadcastRecipient.objects.filter(
            pk=recipient_id,
            claimed_at=claim,
            status__in=(RStatus.PENDING, RStatus.UNKNOWN),
        ).update(**fields)
    )


def _record_sent(recipient_id: int, claim, external_id: str) -> bool:
    return _record(
        recipient_id,
        claim,
        status=RStatus.SENT,
        provider_message_id=external_id[:200],
        sent_at=timezone.now(),
        error="",
    )


# Forward only: a late "delivered" never overwrites "read".
RECIPIENT_RANK = {RStatus.SENT: 1, RStatus.DELIVERED: 2, RStatus.READ: 3}


def record_recipient_status(recipient_id: int, status: str) -> bool:
    """A sent recipient's delivered or read, as its channel's far end reports it (forward
    only); publishes the broadcast's progress. False when it would not move forward."""
    if status not in (RStatus.DELIVERED, RStatus.READ):
        raise ValueError(status)
    earlier = [value for value, rank in RECIPIENT_RANK.items() if rank < RECIPIENT_RANK[status]]
    with transaction.atomic():
        changed = BroadcastRecipient.objects.filter(pk=recipient_id, status__in=earlier).update(
            status=status
        )
        if changed:
            broadcast_id, company_id = BroadcastRecipient.objects.values_list(
                "broadcast_id", "broadcast__company_id"
            ).get(pk=recipient_id)
            publish_progress(broadcast_id, company_id)
    if changed:
        logger.info("broadcast recipient=%s status=%s", recipient_id, status)
    return bool(changed)


def record_recipient_statuses(number_id: int, updates: list[tuple[str, str, str]]) -> int:
    """Cloud status webhooks about a number's broadcast sends, `(wamid, status, error)` in the
    order they happened: each recipient moves forward only (sent → delivered → read; failed
    only from sent, with the far end's reason), set-wise in one statement, and each touched
    broadcast's progress is published shortly after commit (publish_progress_shortly).
    Returns the recipients changed."""
    # Which of a batch's reports wins per send: failed follows sent and loses to delivered/read.
    order = {RStatus.SENT: 1, RStatus.FAILED: 1.5, RStatus.DELIVERED: 2, RStatus.READ: 3}
    best: dict[str, tuple[str, str]] = {}
    for wamid, status, error in updates:
        if status in order and (wamid not in best or order[status] > order[best[wamid][0]]):
            best[wamid] = (status, error)
    if not best:
        return 0
    wamids = list(best)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE channels_integrations_broadcastrecipient AS r"
            " SET status = v.status, error = v.error, updated_at = now()"
            " FROM unnest(%s::text[], %s::text[], %s::text[])"
            " AS v(wamid, status, error), channels_integrations_broadcast AS b"
            " WHERE r.provider_message_id = v.wamid AND r.provider_message_id <> ''"
            " AND b.id = r.broadcast_id AND b.number_id = %s"
            " AND CASE v.status WHEN %s THEN r.status = %s"
            "  WHEN %s THEN r.status IN (%s, %s)"
            "  WHEN %s THEN r.status IN (%s, %s, %s) ELSE false END"
            " RETURNING r.broadcast_id, b.company_id",
            [
                wamids,
                [best[w][0] for w in wamids],
                [best[w][1][:2000] if best[w][0] == RStatus.FAILED else "" for w in wamids],
                number_id,
                RStatus.FAILED,
                RStatus.SENT,
                RStatus.DELIVERED,
                RStatus.SENT,
                RStatus.FAILED,
                RStatus.READ,
                RStatus.SENT,
                RStatus.DELIVERED,
                RStatus.FAILED,
            ],
        )
        rows = cursor.fetchall()
        for broadcast_id, company_id in set(rows):
            transaction.on_commit(
                lambda b=broadcast_id, c=company_id: publish_progress_shortly(b, c)
            )
    if rows:
        logger.info("broadcast statuses: number=%s recipients=%s", number_id, len(rows))
    return len(rows)


def _finish_if_done(broadcast: Broadcast) -> bool:
    if BroadcastRecipient.objects.filter(
        broadcast_id=broadcast.pk, status=RStatus.PENDING
    ).exists():
        return False
    # Nothing reached anyone and something failed: the broadcast failed (not a green
    # "Completed" with 0 sent).
    recipients = BroadcastRecipient.objects.filter(broadcast_id=broadcast.pk)
    reached = recipients.filter(status__in=(RStatus.SENT, RStatus.DELIVERED, RStatus.READ))
    failed = not reached.exists() and recipients.filter(status=RStatus.FAILED).exists()
    if Broadcast.objects.filter(pk=broadcast.pk, status=Status.SENDING).update(
        status=Status.FAILED if failed else Status.COMPLETED, finished_at=timezone.now()
    ):
        data = publish_progress(broadcast.pk, broadcast.company_id)
        if data:
            events.publish("broadcast.completed", data, company_id=broadcast.company_id)
            logger.info(
                "broadcast=%s completed: sent=%s failed=%s unknown=%s cancelled=%s",
                broadcast.pk,
                data["sent"],
                data["failed"],
                data["unknown"],
                data["cancelled"],
            )
    return True


def run_broadcast_batch(broadcast_id: int, renew_lease=None) -> BatchResult:
    """Send one small batch of a sending broadcast; say whether and when to run again.

    Every write here autocommits on its own (no surrounding transaction): the claim must be
    durable before the provider is called, the outcome as soon as it is known.
    """
    result = BatchResult()
    broadcast = (
        Broadcast.objects.select_related("number", "sandbox").filter(pk=broadcast_id).first()
    )
    if broadcast is None or broadcast.status != Status.SENDING:
        result.reason = "not sending"
        return result
    number = broadcast.source  # a WhatsApp number, or the sandbox
    if not number.is_active or getattr(number, "status", "") == WhatsAppNumber.Status.DELETING:
        result.reason = "number paused"  # stays `sending`; resumes when reactivated
        logger.info("broadcast=%s paused: source=%s is not active", broadcast_id, number.pk)
        return result

    mark_stale_claims_unknown(broadcast_id)
    candidates = list(
        BroadcastRecipient.objects.filter(
            broadcast_id=broadcast_id, status=RStatus.PENDING, claimed_at__isnull=True
        )
        .order_by("id")
        .values_list("id", "phone", "client__name")[:BATCH_SIZE]
    )
    channel = channels.for_source(number)
    route = channel.route(number)
    deadline = time.monotonic() + BATCH_SECONDS
    for recipient_id, phone, client_name in candidates:
        if time.monotonic() > deadline:
            result.again_in = 0.0
            break
        if renew_lease is not None and not renew_lease():
            result.reason = "lease lost"
            logger.warning("broadcast=%s batch lost its lease; stopping", broadcast_id)
            break
        wait = acquire_send_slot(number.pk if broadcast.number_id else f"{SANDBOX}-{number.pk}")
        if wait > 0:
            result.again_in = min(wait, MAX_REQUEUE_SECONDS)
            result.reason = "rate limit"
            break
        claim = RECIPIENTS.claim(recipient_id)
        if claim is None:
            continue  # cancelled, or another worker took it
        attempts = BroadcastRecipient.objects.values_list("send_attempts", flat=True).get(
            pk=recipient_id
        )
        part = None
        if broadcast.template_name:
            try:
                part = recipient_template(number, broadcast, client_name)
            except ValidationError as exc:  # unsynced or no longer approved since creation
                reason = " ".join(exc.messages)
                _record(recipient_id, claim, status=RStatus.FAILED, error=reason)
                result.failed += 1
                continue
        message = OutboundMessage(
            key=RECIPIENTS.key(recipient_id),
            platform=channel.platform,
            company_id=number.company_id,
            source_id=number.pk,
            to_address=str(phone),
            body=part.rendered if part else broadcast.text,
            route=route,
            template=part,
        )
        outcome = sending.attempt(message, attempts)
        if outcome.kind == "sent":
            _record_sent(recipient_id, claim, outcome.external_id)
            result.sent += 1
        elif outcome.kind == "retry":
            RECIPIENTS.release(recipient_id, claim, outcome.retry_in, error=outcome.reason)
            result.retrying += 1
            result.again_in = min(MAX_REQUEUE_SECONDS, outcome.retry_in)
            result.reason = "transient failure"
            logger.warning(
                "broadcast=%s recipient=%s transient failure (attempt %d); retry in %.0fs",
                broadcast_id,
                recipient_id,
                attempts,
                result.again_in,
            )
            break  # the number is probably throttled: pause the whole batch
        elif outcome.kind == "failed":
            _record(recipient_id, claim, status=RStatus.FAILED, error=outcome.reason)
            result.failed += 1
            logger.info("broadcast=%s recipient=%s failed", broadcast_id, recipient_id)
        else:  # unknown: it may have been sent
            _record(recipient_id, claim, status=RStatus.UNKNOWN, error=outcome.reason)
            logger.warning("broadcast=%s recipient=%s outcome unknown", broadcast_id, recipient_id)

    if result.sent or result.failed or result.retrying:
        publish_progress(broadcast_id, number.company_id)
    logger.info(
        "broadcast=%s batch: sent=%d failed=%d retrying=%d%s",
        broadcast_id,
        result.sent,
        result.failed,
        result.retrying,
        f" ({result.reason})" if result.reason else "",
    )
    if result.again_in is not None or result.reason == "lease lost":
        return result
    if _finish_if_done(broadcast):
        result.reason = "completed"
        return result
    in_flight_only = not BroadcastRecipient.objects.filter(
        broadcast_id=broadcast_id, status=RStatus.PENDING, claimed_at__isnull=True
    ).exists()
    # Claims of another worker (or of a dead one, until the grace period ends) remain.
    result.again_in = IN_FLIGHT_RECHECK_SECONDS if in_flight_only else 0.0
    return result
