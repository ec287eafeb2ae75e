"""Reads for deals: the board, the filtered list, a client's and a conversation's deals."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from django.db.models import Count, Prefetch, Q, Sum
from django.utils.translation import gettext as _

from accounts.scoping import scoped

from .models import Deal, Pipeline, Stage, StageChange

BOARD_CARDS_PER_STAGE = 200


def pipelines(actor):
    return scoped(Pipeline, actor).order_by("-is_default", "name", "id")


def deals(actor):
    return scoped(Deal, actor).select_related("owner", "client", "stage", "pipeline")


def board(actor, pipeline: Pipeline) -> list[dict]:
    """The pipeline's stages in order, each with its open deals (newest change first), its
    count and its amounts per currency: three queries whatever the size."""
    stages = list(Stage.objects.filter(pipeline=pipeline).order_by("position", "id"))
    open_deals = deals(actor).filter(pipeline=pipeline, status=Deal.Status.OPEN)
    totals = {}
    for row in (
        open_deals.values("stage_id", "currency")
        .annotate(n=Count("id"), total=Sum("amount"))
        .order_by()
    ):
        entry = totals.setdefault(row["stage_id"], {"count": 0, "amounts": []})
        entry["count"] += row["n"]
        entry["amounts"].append((row["currency"], row["total"]))
    cards: dict[int, list] = {stage.pk: [] for stage in stages}
    # Newest first per stage, at most BOARD_CARDS_PER_STAGE each (a window, one query).
    from django.db.models import F, Window
    from django.db.models.functions import RowNumber

    ranked = (
        open_deals.annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("stage_id")],
                order_by=[F("updated_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=BOARD_CARDS_PER_STAGE)
        .order_by("stage__position", "-updated_at", "-id")
    )
    for deal in ranked:
        cards.setdefault(deal.stage_id, []).append(deal)
    return [
        {
            "stage": stage,
            "deals": cards.get(stage.pk, []),
            "count": totals.get(stage.pk, {}).get("count", 0),
            "amounts": sorted(totals.get(stage.pk, {}).get("amounts", [])),
        }
        for stage in stages
    ]


@dataclass
class DealFilter:
    pipeline: int | None = None
    stage: int | None = None
    owner: int | None = None
    status: str = ""
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    created_from: date | None = None
    created_to: date | None = None
    client: int | None = None
    q: str = ""


def _int(value):
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _decimal(value):
    try:
        return Decimal(value) if value not in (None, "") else None
    except (InvalidOperation, TypeError, ValueError):
        return None


def _date(value):
    try:
        return date.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def parse_filter(params) -> tuple[DealFilter, dict]:
    """Filters from a query string, and errors naming each value that could not be read."""
    errors = {}
    values = {}
    for name, parse in (
        ("pipeline", _int),
        ("stage", _int),
        ("owner", _int),
        ("client", _int),
        ("amount_min", _decimal),
        ("amount_max", _decimal),
        ("created_from", _date),
        ("created_to", _date),
    ):
        raw = params.get(name, "")
        value = parse(raw)
        if raw not in (None, "") and value is None:
            errors[name] = [_("Enter a valid value.")]
        values[name] = value
    status = params.get("status", "")
    if status and status not in Deal.Status.values:
        errors["status"] = [_("Choose open, won or lost.")]
        status = ""
    return DealFilter(status=status, q=params.get("q", "").strip(), **values), errors


def filtered_deals(actor, f: DealFilter):
    rows = deals(actor)
    if f.pipeline:
        rows = rows.filter(pipeline_id=f.pipeline)
    if f.stage:
        rows = rows.filter(stage_id=f.stage)
    if f.owner:
        rows = rows.filter(owner_id=f.owner)
    if f.client:
        rows = rows.filter(client_id=f.client)
    if f.status:
        rows = rows.filter(status=f.status)
    if f.amount_min is not None:
        rows = rows.filter(amount__gte=f.amount_min)
    if f.amount_max is not None:
        rows = rows.filter(amount__lte=f.amount_max)
    if f.created_from:
        rows = rows.filter(created_at__date__gte=f.created_from)
    if f.created_to:
        rows = rows.filter(created_at__date__lte=f.created_to)
    if f.q:
        rows = rows.filter(Q(title__icontains=f.q) | Q(client__name__icontains=f.q))
    return rows.order_by("-updated_at", "-id")


def client_deals(actor, client, *, open_only: bool = False):
    rows = deals(actor).filter(client=client)
    if open_only:
        rows = rows.filter(status=Deal.Status.OPEN)
    return rows.order_by("-updated_at", "-id")


def history(deal: Deal):
    return (
        StageChange.objects.filter(deal=deal).select_related("actor").order_by("created_at", "id")
    )


def deal_with_history(actor, pk):
    from accounts.scoping import get_scoped_or_404

    return get_scoped_or_404(
        deals(actor).prefetch_related(
            Prefetch("history", queryset=StageChange.objects.select_related("actor"))
        ),
        actor,
        pk=pk,
    )
