"""Client writes beyond one row: merge two clients, CSV import and export, delete with a
preview. Reads are scoped to the actor's company; every write is one transaction."""

import csv
import io
import logging
from collections.abc import Iterator

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.scoping import scoped
from messaging import events

from .forms import ClientForm
from .models import Client, ClientMerge
from .services import CLIENT_FIELDS, delete_in_database

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("name", "phone", "email", "telegram_user_id", "telegram_username", "notes")
IMPORT_MAX_ROWS = 50_000
IMPORT_MAX_BYTES = 10 * 1024 * 1024
IDENTITIES = ("phone", "email", "telegram_user_id", "telegram_username")


def _snapshot(client: Client) -> dict:
    return {
        "id": client.pk,
        **{name: str(getattr(client, name) or "") for name in CLIENT_FIELDS},
        "created_at": client.created_at.isoformat(),
    }


def merge_clients(actor, keep: Client, other: Client) -> ClientMerge:
    """`other`'s conversations and deals move to `keep`; `keep` takes `other`'s name,
    phone, email and Telegram identity where its own are empty (identities it already has
    stay, and `other`'s are kept in the merge record and its notes); `other` is deleted.
    Inbound messages from either identity then land on `keep`."""
    from deals.models import Deal
    from messaging.models import Conversation

    if keep.pk == other.pk:
        raise ValidationError({"other": [_("Choose another client to merge.")]})
    if keep.company_id != actor.company_id or other.company_id != actor.company_id:
        raise ValidationError({"other": [_("Not found.")]})
    with transaction.atomic():
        # Both rows locked, lower id first (two merges of the same pair cannot deadlock).
        locked = {
            c.pk: c
            for c in Client.objects.select_for_update()
            .filter(pk__in=[keep.pk, other.pk])
            .order_by("pk")
        }
        if len(locked) != 2:
            raise ValidationError({"other": [_("Not found.")]})
        keep, other = locked[keep.pk], locked[other.pk]
        snapshot = _snapshot(other)
        conversation_ids = list(
            Conversation.objects.filter(client=other).values_list("pk", flat=True)
        )
        moved_conversations = Conversation.objects.filter(pk__in=conversation_ids).update(
            client=keep
        )
        moved_deals = Deal.objects.filter(client=other).update(client=keep)
        # The identities are unique per company: take them over only after `other` is gone.
        taken = {
            name: getattr(other, name)
            for name in ("name", *IDENTITIES)
            if getattr(other, name) not in (None, "") and getattr(keep, name) in (None, "")
        }
        left = {
            name: str(getattr(other, name))
            for name in IDENTITIES
            if getattr(other, name) not in (None, "")
            and name not in taken
            and getattr(other, name) != getattr(keep, name)
        }
        notes = [keep.notes] if keep.notes else []
        if other.notes:
            notes.append(other.notes)
        if left:
            notes.append(
                _("Merged from %(client)s: %(identities)s")
                % {
                    "client": str(other),
                    "identities": ", ".join(f"{k} {v}" for k, v in left.items()),
                }
            )
        delete_in_database(other)
        for name, value in taken.items():
            setattr(keep, name, value)
        keep.notes = "\n".join(notes)
        keep.save()
        record = ClientMerge.objects.create(
            company_id=keep.company_id,
            kept=keep,
            merged_client_id=snapshot["id"],
            snapshot=snapshot,
            conversations_moved=moved_conversations,
            deals_moved=moved_deals,
            actor=actor,
        )
        events.publish(
            "client.merged",
            {"id": keep.pk, "merged_id": snapshot["id"], "conversation_ids": conversation_ids},
            company_id=keep.company_id,
        )
    logger.info(
        "clients: client=%s merged into client=%s by user=%s conversations=%d deals=%d",
        snapshot["id"],
        keep.pk,
        actor.pk,
        moved_conversations,
        moved_deals,
    )
    return record


def delete_preview(client: Client) -> dict:
    from deals.models import Deal, StageChange
    from messaging.models import Conversation

    return {
        "conversations": Conversation.objects.filter(client=client).count(),
        "deals": Deal.objects.filter(client=client).count(),
        "deal_history": StageChange.objects.filter(deal__client=client).count(),
        "merges": ClientMerge.objects.filter(kept=client).count(),
    }


def delete_client(actor, client: Client) -> None:
    """One SQL DELETE: deals (and their history) go by ON DELETE CASCADE; conversations stay,
    without a client (their messages are the company's record)."""
    company_id, pk = client.company_id, client.pk
    with transaction.atomic():
        delete_in_database(client)
        events.publish("client.deleted", {"id": pk}, company_id=company_id)
    logger.info("clients: client=%s deleted by user=%s", pk, actor.pk)


# ---------------------------------------------------------------- CSV


class ImportErrors(ValidationError):
    """Bad lines of a CSV import: [(line number, field, message)]."""

    def __init__(self, lines: list[tuple[int, str, str]]):
        self.lines = lines
        super().__init__([f"line {n}, {field}: {message}" for n, field, message in lines])


def import_clients_csv(actor, data: bytes) -> int:
    """Create one client per line of a CSV with a header naming some of CSV_COLUMNS. Every
    line is checked first (format, duplicates in the file and in the company); any bad line
    means nothing is written and every bad line is reported with its number and field."""
    if len(data) > IMPORT_MAX_BYTES:
        raise ImportErrors([(0, "file", _("The file is larger than 10 MB."))])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportErrors([(0, "file", _("The file is not UTF-8 text."))]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if not header:
        raise ImportErrors([(1, "header", _("The first line must name the columns."))])
    if unknown:
        raise ImportErrors(
            [
                (
                    1,
                    "header",
                    _("Unknown column “%(name)s”; allowed: %(allowed)s.")
                    % {"name": name, "allowed": ", ".join(CSV_COLUMNS)},
                )
                for name in unknown
            ]
        )
    reader.fieldnames = header
    errors: list[tuple[int, str, str]] = []
    rows: list[tuple[int, dict]] = []
    seen: dict[tuple[str, str], int] = {}
    for row in reader:
        line = reader.line_num
        if len(rows) >= IMPORT_MAX_ROWS:
            errors.append(
                (line, "file", _("At most %(n)d lines per import.") % {"n": IMPORT_MAX_ROWS})
            )
            break
        if None in row:
            errors.append((line, "line", _("More values than columns.")))
            continue
        values = {name: (row.get(name) or "").strip() for name in header}
        if not any(values.values()):
            continue
        form = ClientForm(values)
        if not form.is_valid():
            for field, messages in form.errors.items():
                errors.extend((line, field, str(message)) for message in messages)
            continue
        cleaned = form.cleaned_data
        cleaned["email"] = (cleaned.get("email") or "").lower()
        for field in ("phone", "email", "telegram_user_id"):
            value = cleaned.get(field)
            if value in (None, ""):
                continue
            key = (field, str(value))
            if key in seen:
                errors.append((line, field, _("Same as line %(n)d.") % {"n": seen[key]}))
            else:
                seen[key] = line
        rows.append((line, cleaned))
    # One query per identity field for clashes with existing clients.
    existing = scoped(Client, actor)
    for field in ("phone", "email", "telegram_user_id"):
        values = {str(c[field]): line for line, c in rows if c.get(field) not in (None, "")}
        if not values:
            continue
        taken = existing.filter(**{f"{field}__in": list(values)}).values_list(field, flat=True)
        for value in taken:
            errors.append(
                (values[str(value)], field, _("A client of your company already has this value."))
            )
    if errors:
        raise ImportErrors(sorted(errors))
    with transaction.atomic():
        Client.objects.bulk_create(
            Client(company=actor.company, **cleaned) for _line, cleaned in rows
        )
    logger.info("clients: %d imported by user=%s", len(rows), actor.pk)
    return len(rows)


class _Echo:
    def write(self, value):
        return value


def export_clients_csv(actor) -> Iterator[str]:
    """Every client of the company as CSV lines (the import's columns), streamed."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(["id", *CSV_COLUMNS, "created_at"])
    rows = scoped(Client, actor).order_by("pk").values_list("pk", *CSV_COLUMNS, "created_at")
    for row in rows.iterator(chunk_size=2000):
        *values, created = row
        yield writer.writerow(["" if v is None else v for v in values] + [created.isoformat()])
