"""Writes for labels, saved views and bulk actions. Every change is published after commit
through messaging.events: label.created/updated/deleted, conversation.labeled,
client.labeled (company group), saved_view.changed (the company for a shared view, the
owner for a personal one)."""

import logging
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from accounts.scoping import scoped
from crm.services import delete_in_database
from messaging import events
from messaging import services as messaging_services
from messaging.models import Conversation
from notifications import services as notifications

from .filters import clean_filters
from .models import ClientLabel, ConversationLabel, Label, SavedView
from .selectors import label_usage

logger = logging.getLogger(__name__)

NAME_MAX = 50
VIEW_NAME_MAX = 60
BULK_MAX = 200  # conversations per bulk action
BULK_ALL_MAX = 1000  # "select all": every conversation of a filtered list, at most this many


# ---------------------------------------------------------------- labels


def label_payload(label: Label) -> dict:
    return {"id": label.pk, "name": label.name, "color": label.color}


def _clean_label(actor, name, color, *, instance: Label | None = None) -> tuple[str, str]:
    errors = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = [_("Give the label a name.")]
    elif len(name) > NAME_MAX:
        errors["name"] = [_("At most %(max)d characters.") % {"max": NAME_MAX}]
    else:
        taken = scoped(Label, actor).filter(name__iexact=name)
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            errors["name"] = [_("Your company already has a label with this name.")]
    if color not in Label.Color.values:
        errors["color"] = [
            _("Choose one of: %(values)s.") % {"values": ", ".join(Label.Color.values)}
        ]
    if errors:
        raise ValidationError(errors)
    return name, color


def _require_admin(actor) -> None:
    if not actor.is_company_admin:
        raise PermissionDenied(_("Only an admin of your company manages labels."))


def create_label(actor, name: str, color: str = Label.Color.BLUE) -> Label:
    _require_admin(actor)
    name, color = _clean_label(actor, name, color)
    try:
        with transaction.atomic():
            label = Label.objects.create(company_id=actor.company_id, name=name, color=color)
            events.publish("label.created", label_payload(label), company_id=actor.company_id)
    except IntegrityError:  # the same name created a moment ago
        raise ValidationError(
            {"name": [_("Your company already has a label with this name.")]}
        ) from None
    logger.info("label=%s created by=%s", label.pk, actor.pk)
    return label


def update_label(actor, label: Label, *, name: str | None = None, color: str | None = None):
    _require_admin(actor)
    name, color = _clean_label(
        actor,
        label.name if name is None else name,
        label.color if color is None else color,
        instance=label,
    )
    label.name, label.color = name, color
    try:
        with transaction.atomic():
            label.save(update_fields=["name", "color"])
            events.publish("label.updated", label_payload(label), company_id=label.company_id)
    except IntegrityError:
        raise ValidationError(
            {"name": [_("Your company already has a label with this name.")]}
        ) from None
    return label


def delete_label(actor, label: Label) -> dict:
    """Delete the label and take it off everything it is on (one SQL DELETE, cascaded by
    PostgreSQL). Returns what it was on: {"conversations": n, "clients": n}."""
    _require_admin(actor)
    with transaction.atomic():
        usage = label_usage(label)
        payload = label_payload(label)
        delete_in_database(label)
        events.publish("label.deleted", payload, company_id=label.company_id)
    logger.info("label=%s deleted by=%s (on %s)", payload["id"], actor.pk, usage)
    return usage


def _company_labels(actor, labels) -> list[Label]:
    labels = list(labels)
    if any(label.company_id != actor.company_id for label in labels):
        raise ValidationError({"labels": [_("Choose your company's labels.")]})
    return labels


def _set_links(link_model, owner_field: str, owner, labels: list[Label]) -> list[int]:
    wanted = {label.pk for label in labels}
    links = link_model.objects.filter(**{owner_field: owner})
    have = set(links.values_list("label_id", flat=True))
    links.exclude(label_id__in=wanted).delete()
    link_model.objects.bulk_create(
        [link_model(**{owner_field: owner, "label_id": pk}) for pk in wanted - have],
        ignore_conflicts=True,
    )
    return sorted(wanted)


def set_conversation_labels(actor, conversation: Conversation, labels) -> list[int]:
    """The conversation carries exactly `labels` (labels of the actor's company)."""
    labels = _company_labels(actor, labels)
    if conversation.company_id != actor.company_id:
        raise ValidationError({"conversation": [_("Not found.")]})
    with transaction.atomic():
        ids = _set_links(ConversationLabel, "conversation", conversation, labels)
        events.publish(
            "conversation.labeled",
            {"id": conversation.pk, "label_ids": ids},
            conversation=conversation,
        )
    return ids


def set_client_labels(actor, client, labels) -> list[int]:
    """The client carries exactly `labels` (labels of the actor's company)."""
    labels = _company_labels(actor, labels)
    if client.company_id != actor.company_id:
        raise ValidationError({"client": [_("Not found.")]})
    with transaction.atomic():
        ids = _set_links(ClientLabel, "client", client, labels)
        events.publish(
            "client.labeled", {"id": client.pk, "label_ids": ids}, company_id=client.company_id
        )
    return ids


# ---------------------------------------------------------------- saved views


def _view_audience(view: SavedView) -> dict:
    if view.shared:
        return {"company_id": view.company_id}
    return {"user_ids": [view.owner_id]}


def _publish_view(view: SavedView, action: str) -> None:
    events.publish("saved_view.changed", {"id": view.pk, "action": action}, **_view_audience(view))


def _clean_view_name(name) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": [_("Give the view a name.")]})
    if len(name) > VIEW_NAME_MAX:
        raise ValidationError({"name": [_("At most %(max)d characters.") % {"max": VIEW_NAME_MAX}]})
    return name


def _may_edit_view(actor, view: SavedView) -> None:
    if view.owner_id != actor.pk and not actor.is_company_admin:
        raise PermissionDenied(_("Only its owner or an admin changes a shared view."))


def create_view(actor, name: str, filters: dict, *, shared: bool = False) -> SavedView:
    errors = {}
    try:
        name = _clean_view_name(name)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        filters = clean_filters(actor, filters or {})
    except ValidationError as exc:
        errors.update({f"filters.{key}": value for key, value in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        view = SavedView.objects.create(
            company_id=actor.company_id,
            owner=actor,
            name=name,
            shared=bool(shared),
            filters=filters,
        )
        _publish_view(view, "created")
    return view


def update_view(
    actor,
    view: SavedView,
    *,
    name: str | None = None,
    shared: bool | None = None,
    filters: dict | None = None,
) -> SavedView:
    _may_edit_view(actor, view)
    was_shared = view.shared
    if name is not None:
        view.name = _clean_view_name(name)
    if filters is not None:
        try:
            view.filters = clean_filters(actor, filters)
        except ValidationError as exc:
            raise ValidationError(
                {f"filters.{key}": value for key, value in exc.message_dict.items()}
            ) from None
    if shared is not None:
        view.shared = bool(shared)
    with transaction.atomic():
        view.save()
        _publish_view(view, "updated")
        if was_shared and not view.shared:  # the others' sidebars drop it
            events.publish(
                "saved_view.changed",
                {"id": view.pk, "action": "deleted"},
                company_id=view.company_id,
            )
    return view


def delete_view(actor, view: SavedView) -> None:
    _may_edit_view(actor, view)
    with transaction.atomic():
        _publish_view(view, "deleted")
        view.delete()


# ---------------------------------------------------------------- bulk actions


@dataclass
class BulkResult:
    done: list[int] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # {"id", "error"}

    def as_dict(self) -> dict:
        return {"done": self.done, "failed": self.failed}


BULK_ACTIONS = ("assign", "label", "unlabel", "close")


def bulk_update(
    actor,
    ids,
    action: str,
    *,
    assignee=None,
    label: Label | None = None,
    limit: int = BULK_MAX,
) -> BulkResult:
    """Apply one action to many conversations of the actor's company. Each conversation is
    its own small transaction: one that fails (or is not found, or is another company's) is
    named in `failed` and the others go through. `assignee`: a member or None (unassign)."""
    errors = {}
    if action not in BULK_ACTIONS:
        errors["action"] = [_("Must be one of: %(values)s.") % {"values": ", ".join(BULK_ACTIONS)}]
    try:
        wanted = list(dict.fromkeys(int(value) for value in ids))
    except (TypeError, ValueError):
        wanted = None
        errors["ids"] = [_("Give conversation ids (numbers).")]
    if wanted is not None and not wanted:
        errors["ids"] = [_("Select at least one conversation.")]
    elif wanted is not None and len(wanted) > limit:
        errors["ids"] = [_("At most %(max)d conversations at once.") % {"max": limit}]
    if action in ("label", "unlabel") and (label is None or label.company_id != actor.company_id):
        errors["label"] = [_("Choose one of your company's labels.")]
    if action == "assign" and assignee is not None and assignee.company_id != actor.company_id:
        errors["assignee"] = [_("Choose a member of your company.")]
    if errors:
        raise ValidationError(errors)
    found = {
        c.pk: c for c in scoped(Conversation, actor).select_related("client").filter(pk__in=wanted)
    }
    result = BulkResult()
    for pk in wanted:
        conversation = found.get(pk)
        if conversation is None:
            result.failed.append({"id": pk, "error": _("Not found.")})
            continue
        try:
            with transaction.atomic():
                _bulk_one(actor, conversation, action, assignee, label)
        except ValidationError as exc:
            result.failed.append({"id": pk, "error": " ".join(exc.messages)})
        else:
            result.done.append(pk)
    if action == "assign":  # the assignee hears of them all at once, not in one query each
        notifications.conversations_assigned(actor, [found[pk] for pk in result.done])
    logger.info(
        "bulk %s by=%s done=%d failed=%d", action, actor.pk, len(result.done), len(result.failed)
    )
    return result


def bulk_update_matching(
    actor, conversations, action: str, *, assignee=None, label: Label | None = None
) -> BulkResult:
    """ "Select all": the action on every conversation of `conversations` (a filtered inbox
    list, every page of it), re-scoped to the actor's company by bulk_update. More than
    BULK_ALL_MAX is refused as a whole (ValidationError naming `ids`): nothing is changed."""
    ids = list(conversations.values_list("pk", flat=True)[: BULK_ALL_MAX + 1])
    if len(ids) > BULK_ALL_MAX:
        raise ValidationError(
            {
                "ids": [
                    _("At most %(max)d conversations at once: narrow the filters.")
                    % {"max": BULK_ALL_MAX}
                ]
            }
        )
    return bulk_update(actor, ids, action, assignee=assignee, label=label, limit=BULK_ALL_MAX)


def _bulk_one(actor, conversation, action, assignee, label) -> None:
    if action == "assign":
        messaging_services.assign_conversation(actor, conversation, assignee, notify=False)
    elif action == "close":
        messaging_services.set_conversation_status(actor, conversation, Conversation.Status.CLOSED)
    else:
        links = ConversationLabel.objects.filter(conversation=conversation)
        if action == "label":
            ConversationLabel.objects.bulk_create(
                [ConversationLabel(conversation=conversation, label=label)], ignore_conflicts=True
            )
        else:
            links.filter(label=label).delete()
        events.publish(
            "conversation.labeled",
            {"id": conversation.pk, "label_ids": sorted(links.values_list("label_id", flat=True))},
            conversation=conversation,
        )
