"""Writes for pipelines and deals. Every change is published (`deal.created/updated/moved/
deleted`, `pipeline.changed`) to the company after commit, through messaging.events."""

import logging
from datetime import date
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.scoping import scoped
from crm.models import Client
from crm.services import delete_in_database
from messaging import events

from .models import ChannelDealSetting, Deal, Pipeline, Stage, StageChange
from .payloads import deal_payload

logger = logging.getLogger(__name__)

DEFAULT_STAGES = (
    gettext_lazy("New"),
    gettext_lazy("Qualified"),
    gettext_lazy("Proposal"),
    gettext_lazy("Negotiation"),
)
DEAL_FIELDS = (
    "title",
    "amount",
    "currency",
    "owner",
    "client",
    "conversation",
    "expected_close_date",
)


# ---------------------------------------------------------------- pipelines


def default_pipeline(company) -> Pipeline:
    """The company's default pipeline, created with the usual stages the first time it is asked
    for (two requests at once make one: the partial unique index decides)."""
    pipeline = Pipeline.objects.filter(company=company, is_default=True).first()
    if pipeline is not None:
        return pipeline
    try:
        with transaction.atomic():
            pipeline = Pipeline.objects.create(company=company, name=_("Sales"), is_default=True)
            Stage.objects.bulk_create(
                Stage(pipeline=pipeline, name=str(name), position=index)
                for index, name in enumerate(DEFAULT_STAGES)
            )
    except IntegrityError:
        return Pipeline.objects.get(company=company, is_default=True)
    return pipeline


def _clean_names(stage_names) -> list[str]:
    names = [str(name).strip() for name in stage_names if str(name).strip()]
    if not names:
        raise ValidationError({"stages": [_("A pipeline needs at least one stage.")]})
    if any(len(name) > 100 for name in names):
        raise ValidationError({"stages": [_("A stage name has at most 100 characters.")]})
    return names


def _check_pipeline_name(actor, name: str, exclude_pk=None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": [_("This field is required.")]})
    if len(name) > 100:
        raise ValidationError({"name": [_("At most 100 characters.")]})
    if scoped(Pipeline, actor).filter(name=name).exclude(pk=exclude_pk).exists():
        raise ValidationError({"name": [_("Another pipeline has this name.")]})
    return name


@transaction.atomic
def create_pipeline(actor, name: str, stage_names: list[str]) -> Pipeline:
    name = _check_pipeline_name(actor, name)
    names = _clean_names(stage_names)
    is_default = not scoped(Pipeline, actor).exists()
    pipeline = Pipeline.objects.create(company=actor.company, name=name, is_default=is_default)
    Stage.objects.bulk_create(
        Stage(pipeline=pipeline, name=stage, position=index) for index, stage in enumerate(names)
    )
    _pipeline_changed(pipeline)
    return pipeline


@transaction.atomic
def update_pipeline(
    actor, pipeline: Pipeline, name: str, stages: list[tuple[int | None, str]]
) -> Pipeline:
    """Rename the pipeline and set its stages: (id, name) keeps/renames a stage, (None, name)
    adds one; the list order is the new order. A stage left out is removed, which is refused
    while it holds deals."""
    pipeline.name = _check_pipeline_name(actor, name, exclude_pk=pipeline.pk)
    _clean_names(name for _pk, name in stages)
    existing = {
        stage.pk: stage for stage in Stage.objects.select_for_update().filter(pipeline=pipeline)
    }
    kept = {pk for pk, _name in stages if pk is not None}
    if kept - set(existing):
        raise ValidationError({"stages": [_("A stage does not belong to this pipeline.")]})
    removed = set(existing) - kept
    if removed and Deal.objects.filter(stage_id__in=removed).exists():
        raise ValidationError(
            {"stages": [_("A stage that still holds deals cannot be removed: move them first.")]}
        )
    pipeline.save(update_fields=["name"])
    Stage.objects.filter(pk__in=removed).delete()
    for index, (pk, stage_name) in enumerate(stages):
        stage_name = stage_name.strip()
        if pk is None:
            Stage.objects.create(pipeline=pipeline, name=stage_name, position=index)
        else:
            Stage.objects.filter(pk=pk).update(name=stage_name, position=index)
    _pipeline_changed(pipeline)
    return pipeline


def pipeline_delete_preview(pipeline: Pipeline) -> dict:
    """What goes with the pipeline, counted by the database."""
    from django.db.models import Count, Q

    counts = Deal.objects.filter(pipeline=pipeline).aggregate(
        deals=Count("id"),
        open=Count("id", filter=Q(status=Deal.Status.OPEN)),
        won=Count("id", filter=Q(status=Deal.Status.WON)),
        lost=Count("id", filter=Q(status=Deal.Status.LOST)),
    )
    counts["stages"] = Stage.objects.filter(pipeline=pipeline).count()
    counts["history"] = StageChange.objects.filter(deal__pipeline=pipeline).count()
    return counts


def delete_pipeline(actor, pipeline: Pipeline) -> None:
    """One SQL DELETE: stages, deals and their history go by ON DELETE CASCADE. The default
    pipeline passes to the oldest remaining one."""
    company_id, pk, was_default = pipeline.company_id, pipeline.pk, pipeline.is_default
    with transaction.atomic():
        delete_in_database(pipeline)
        if was_default:
            successor = (
                Pipeline.objects.filter(company_id=company_id).order_by("created_at", "id").first()
            )
            if successor:
                Pipeline.objects.filter(pk=successor.pk).update(is_default=True)
        events.publish("pipeline.deleted", {"id": pk}, company_id=company_id)
    logger.info("deals: pipeline=%s deleted by user=%s", pk, actor.pk)


def _pipeline_changed(pipeline: Pipeline) -> None:
    events.publish("pipeline.changed", {"id": pipeline.pk}, company_id=pipeline.company_id)


# ---------------------------------------------------------------- deals


def _is_id(value) -> bool:
    """A value the database can compare with a bigint primary key."""
    return str(value).isdigit() and int(value) < 2**63


def _scoped_or_error(actor, model, value, field):
    """`value` (a row or an id) as a row of the actor's company, or a field error."""
    if value is None or value == "":
        return None
    pk = getattr(value, "pk", value)
    row = scoped(model, actor).filter(pk=pk).first() if _is_id(pk) else None
    if row is None:
        raise ValidationError({field: [_("Not found.")]})
    return row


def _validated(deal: Deal) -> None:
    try:
        deal.full_clean(
            exclude=[
                "company",
                "pipeline",
                "stage",
                "client",
                "owner",
                "conversation",
                "created_by",
            ],
            validate_constraints=False,
        )
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from None


def _record(deal, actor, *, from_stage=None, from_status="", reason="") -> StageChange:
    return StageChange.objects.create(
        deal=deal,
        from_stage=from_stage,
        to_stage=deal.stage,
        from_name=from_stage.name if from_stage else "",
        to_name=deal.stage.name,
        from_status=from_status,
        to_status=deal.status,
        reason=reason,
        actor=actor,
    )


@transaction.atomic
def create_deal(
    actor,
    *,
    title: str,
    client,
    pipeline=None,
    stage=None,
    amount: Decimal = Decimal("0"),
    currency: str = "EUR",
    owner=None,
    conversation=None,
    expected_close_date: date | None = None,
) -> Deal:
    client = _scoped_or_error(actor, Client, client, "client")
    if client is None:
        raise ValidationError({"client": [_("This field is required.")]})
    from messaging.models import Conversation

    conversation = _scoped_or_error(actor, Conversation, conversation, "conversation")
    owner = _owner(actor, owner)
    pipeline = _scoped_or_error(actor, Pipeline, pipeline, "pipeline") or default_pipeline(
        actor.company
    )
    if stage is None or stage == "":
        stage = Stage.objects.filter(pipeline=pipeline).order_by("position", "id").first()
        if stage is None:
            raise ValidationError({"stage": [_("This pipeline has no stages.")]})
    else:
        stage = _stage_of(pipeline, stage)
    deal = Deal(
        company=actor.company,
        pipeline=pipeline,
        stage=stage,
        title=(title or "").strip(),
        amount=amount if amount is not None else Decimal("0"),
        currency=(currency or "").strip().upper(),
        owner=owner,
        client=client,
        conversation=conversation,
        expected_close_date=expected_close_date,
        created_by=actor,
    )
    _validated(deal)
    deal.save()
    _record(deal, actor)
    events.publish("deal.created", deal_payload(deal), company_id=deal.company_id)
    logger.info("deals: deal=%s created by user=%s", deal.pk, actor.pk)
    return deal


def create_deal_from_conversation(actor, conversation) -> Deal:
    """One click on a conversation: a deal for its client, owned by whoever clicked."""
    from messaging.models import Conversation

    conversation = _scoped_or_error(actor, Conversation, conversation, "conversation")
    if conversation.client_id is None:
        raise ValidationError({"client": [_("This conversation has no client.")]})
    client = conversation.client
    return create_deal(
        actor,
        title=_("Deal with %(client)s") % {"client": client},
        client=client,
        conversation=conversation,
        owner=actor,
    )


def _owner(actor, owner):
    from accounts.models import User

    return _scoped_or_error(actor, User, owner, "owner")


def _stage_of(pipeline: Pipeline, stage) -> Stage:
    pk = getattr(stage, "pk", stage)
    found = Stage.objects.filter(pipeline=pipeline, pk=pk).first() if _is_id(pk) else None
    if found is None:
        raise ValidationError({"stage": [_("This stage is not in the deal's pipeline.")]})
    return found


@transaction.atomic
def update_deal(actor, deal: Deal, **fields) -> Deal:
    """Edit a deal's details (not its stage or status: move_deal / close_deal)."""
    unexpected = set(fields) - set(DEAL_FIELDS)
    if unexpected:
        raise TypeError(f"unexpected fields {sorted(unexpected)}")
    from messaging.models import Conversation

    deal = Deal.objects.select_for_update().get(pk=deal.pk)
    if "client" in fields:
        deal.client = _scoped_or_error(actor, Client, fields.pop("client"), "client")
        if deal.client is None:
            raise ValidationError({"client": [_("This field is required.")]})
    if "owner" in fields:
        deal.owner = _owner(actor, fields.pop("owner"))
    if "conversation" in fields:
        deal.conversation = _scoped_or_error(
            actor, Conversation, fields.pop("conversation"), "conversation"
        )
    for name, value in fields.items():
        if name == "currency":
            value = (value or "").strip().upper()
        if name == "title":
            value = (value or "").strip()
        setattr(deal, name, value)
    _validated(deal)
    deal.save()
    events.publish("deal.updated", deal_payload(deal), company_id=deal.company_id)
    return deal


@transaction.atomic
def move_deal(actor, deal: Deal, stage) -> Deal:
    """Put a deal into another stage of its pipeline (a drag on the board), with history."""
    deal = Deal.objects.select_for_update().select_related("stage").get(pk=deal.pk)
    stage = _stage_of(deal.pipeline, stage)
    if stage.pk == deal.stage_id:
        return deal
    previous = deal.stage
    deal.stage = stage
    deal.save(update_fields=["stage", "updated_at"])
    _record(deal, actor, from_stage=previous, from_status=deal.status)
    events.publish("deal.moved", deal_payload(deal), company_id=deal.company_id)
    logger.info("deals: deal=%s moved %s->%s by user=%s", deal.pk, previous.pk, stage.pk, actor.pk)
    return deal


@transaction.atomic
def close_deal(actor, deal: Deal, status: str, reason: str = "") -> Deal:
    """Won, lost (with a reason) or open again."""
    if status not in Deal.Status.values:
        raise ValidationError({"status": [_("Choose open, won or lost.")]})
    reason = (reason or "").strip()
    if status == Deal.Status.LOST and not reason:
        raise ValidationError({"lost_reason": [_("Say why the deal was lost.")]})
    if len(reason) > 300:
        raise ValidationError({"lost_reason": [_("At most 300 characters.")]})
    deal = Deal.objects.select_for_update().select_related("stage").get(pk=deal.pk)
    if deal.status == status and deal.lost_reason == (reason if status == Deal.Status.LOST else ""):
        return deal
    previous = deal.status
    deal.status = status
    deal.lost_reason = reason if status == Deal.Status.LOST else ""
    deal.closed_at = None if status == Deal.Status.OPEN else timezone.now()
    deal.save(update_fields=["status", "lost_reason", "closed_at", "updated_at"])
    _record(deal, actor, from_stage=deal.stage, from_status=previous, reason=deal.lost_reason)
    events.publish("deal.updated", deal_payload(deal), company_id=deal.company_id)
    return deal


def delete_deal(actor, deal: Deal) -> None:
    company_id, pk = deal.company_id, deal.pk
    with transaction.atomic():
        delete_in_database(deal)
        events.publish("deal.deleted", {"id": pk}, company_id=company_id)
    logger.info("deals: deal=%s deleted by user=%s", pk, actor.pk)


# ---------------------------------------------------------------- automatic deals


@transaction.atomic
def set_channel_auto_deal(actor, source, pipeline: Pipeline | None) -> ChannelDealSetting | None:
    """New clients writing to `source` (a number, account or mailbox of the actor's company)
    get a deal in `pipeline`; None turns it off."""
    from messaging import channels

    platform = channels.for_source(source).platform
    if source.company_id != actor.company_id:
        raise ValidationError({"source": [_("Not found.")]})
    ChannelDealSetting.objects.filter(platform=platform, source_id=source.pk).delete()
    from .receivers import forget_auto_deal_companies

    transaction.on_commit(forget_auto_deal_companies)
    if pipeline is None:
        return None
    pipeline = _scoped_or_error(actor, Pipeline, pipeline, "pipeline")
    return ChannelDealSetting.objects.create(
        company=actor.company, platform=platform, source_id=source.pk, pipeline=pipeline
    )


AUTO_DEAL_SQL = """
INSERT INTO deals_deal (company_id, pipeline_id, stage_id, title, amount, currency, client_id,
                        conversation_id, status, lost_reason, auto_created, created_at, updated_at)
SELECT c.company_id, s.pipeline_id, st.id, LEFT(%(title)s || COALESCE(NULLIF(cl.name, ''),
       NULLIF(cl.phone, ''), NULLIF(cl.email, ''), NULLIF(cl.telegram_username, ''),
       '#' || cl.id::text), 200),
       0, %(currency)s, cl.id, c.id, 'open', '', TRUE, now(), now()
  FROM messaging_conversation c
  JOIN deals_channeldealsetting s ON s.platform = c.platform AND s.source_id = c.source_id
  JOIN crm_client cl ON cl.id = c.client_id AND cl.created_at >= s.enabled_at
  JOIN LATERAL (SELECT id FROM deals_stage WHERE pipeline_id = s.pipeline_id
                 ORDER BY position, id LIMIT 1) st ON TRUE
 WHERE c.id = %(conversation)s
ON CONFLICT DO NOTHING
RETURNING id
"""


def open_deal_for_new_client(conversation_id: int) -> Deal | None:
    """The deal a new client gets with its first message on a channel that asks for it: one
    statement, and at most one such deal per client (a unique index, not a lookup)."""
    from django.db import connection

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                AUTO_DEAL_SQL,
                {"title": _("New lead: "), "currency": "EUR", "conversation": conversation_id},
            )
            row = cursor.fetchone()
        if row is None:
            return None
        deal = Deal.objects.select_related("stage", "client").get(pk=row[0])
        _record(deal, None)
        events.publish("deal.created", deal_payload(deal), company_id=deal.company_id)
    logger.info("deals: deal=%s opened for new client=%s", deal.pk, deal.client_id)
    return deal
