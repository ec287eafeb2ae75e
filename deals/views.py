"""Deal pages: the Kanban board, the filtered list, a deal, pipelines and automatic deals.
Reads through deals.selectors, writes through deals.services."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import User
from accounts.scoping import get_scoped_or_404, scoped
from accounts.views import company_member_required
from crm.models import Client
from messaging import channels

from . import selectors, services
from .forms import CloseForm, DealForm, PipelineDeleteForm, PipelineForm
from .models import ChannelDealSetting, Deal, Pipeline, Stage
from .payloads import deal_payload

DEALS_PER_PAGE = 50


def _members(user):
    return scoped(User, user).filter(is_active=True).order_by("first_name", "last_name", "username")


def _pipeline_from(request):
    pk = request.GET.get("pipeline")
    if pk:
        return get_scoped_or_404(Pipeline, request.user, pk=pk)
    return services.default_pipeline(request.user.company)


@company_member_required
def board(request):
    pipeline = _pipeline_from(request)
    template = "deals/_board.html" if request.GET.get("fragment") else "deals/board.html"
    columns = selectors.board(request.user, pipeline)
    return render(
        request,
        template,
        {
            "pipeline": pipeline,
            "pipelines": selectors.pipelines(request.user),
            "columns": columns,
            "stages": [column["stage"] for column in columns],
        },
    )


@company_member_required
def board_card(request, pk):
    """One card, as the board draws it (the board fetches it when a deal.* event arrives)."""
    deal = get_scoped_or_404(selectors.deals(request.user), request.user, pk=pk)
    stages = Stage.objects.filter(pipeline_id=deal.pipeline_id).order_by("position", "id")
    return render(request, "deals/_card.html", {"deal": deal, "stages": stages})


@company_member_required
def deal_list(request):
    deal_filter, errors = selectors.parse_filter(request.GET)
    rows = selectors.filtered_deals(request.user, deal_filter)
    page = Paginator(rows, DEALS_PER_PAGE).get_page(request.GET.get("page"))
    pipeline_stages = (
        Stage.objects.filter(
            pipeline_id=deal_filter.pipeline, pipeline__company=request.user.company
        )
        if deal_filter.pipeline
        else Stage.objects.none()
    )
    return render(
        request,
        "deals/list.html",
        {
            "page": page,
            "f": deal_filter,
            "errors": errors,
            "pipelines": selectors.pipelines(request.user),
            "stages": pipeline_stages,
            "members": _members(request.user),
            "statuses": Deal.Status.choices,
        },
        status=400 if errors else 200,
    )


@company_member_required
def deal_detail(request, pk):
    deal = selectors.deal_with_history(request.user, pk)
    members = _members(request.user)
    form = DealForm(
        request.POST if request.method == "POST" else None,
        members=members,
        initial={
            "title": deal.title,
            "amount": deal.amount,
            "currency": deal.currency,
            "owner": deal.owner_id,
            "expected_close_date": deal.expected_close_date,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.update_deal(request.user, deal, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Deal saved."))
            return redirect("deal_detail", pk=deal.pk)
    return render(
        request,
        "deals/detail.html",
        {
            "deal": deal,
            "form": form,
            "stages": Stage.objects.filter(pipeline_id=deal.pipeline_id).order_by("position", "id"),
            "close_form": CloseForm(),
        },
        status=400 if form.errors else 200,
    )


def _answer(request, deal, fallback):
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse(deal_payload(deal))
    return redirect(fallback)


def _error(request, exc: ValidationError, fallback):
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse(
            exc.message_dict if hasattr(exc, "error_dict") else {"errors": exc.messages}, status=400
        )
    for message in exc.messages:
        messages.error(request, message)
    return redirect(fallback)


@company_member_required
@require_POST
def deal_move(request, pk):
    """A drop on the board, or the stage select (keyboard, phone)."""
    deal = get_scoped_or_404(Deal, request.user, pk=pk)
    back = request.POST.get("next") or f"/deals/{deal.pk}/"
    if not back.startswith("/") or back.startswith("//"):
        back = f"/deals/{deal.pk}/"
    try:
        deal = services.move_deal(request.user, deal, request.POST.get("stage", ""))
    except ValidationError as exc:
        return _error(request, exc, back)
    return _answer(request, deal, back)


@company_member_required
@require_POST
def deal_close(request, pk):
    deal = get_scoped_or_404(Deal, request.user, pk=pk)
    form = CloseForm(request.POST)
    back = f"/deals/{deal.pk}/"
    if not form.is_valid():
        errors = {
            name: [str(error) for error in field_errors]
            for name, field_errors in form.errors.items()
        }
        return _error(request, ValidationError(errors), back)
    try:
        deal = services.close_deal(
            request.user, deal, form.cleaned_data["status"], form.cleaned_data["lost_reason"]
        )
    except ValidationError as exc:
        return _error(request, exc, back)
    return _answer(request, deal, back)


@company_member_required
def deal_delete(request, pk):
    deal = get_scoped_or_404(selectors.deals(request.user), request.user, pk=pk)
    if request.method == "POST":
        services.delete_deal(request.user, deal)
        messages.success(request, _("Deal “%(title)s” deleted.") % {"title": deal.title})
        return redirect("deal_board")
    return render(
        request, "deals/deal_delete.html", {"deal": deal, "history": deal.history.count()}
    )


@company_member_required
def client_deal_create(request, pk):
    client = get_scoped_or_404(Client, request.user, pk=pk)
    members = _members(request.user)
    form = DealForm(
        request.POST if request.method == "POST" else None,
        members=members,
        initial={
            "title": _("Deal with %(client)s") % {"client": client},
            "owner": request.user.pk,
            "currency": "EUR",
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            deal = services.create_deal(request.user, client=client, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Deal created."))
            return redirect("deal_detail", pk=deal.pk)
    return render(
        request,
        "deals/deal_form.html",
        {"form": form, "client": client},
        status=400 if form.errors else 200,
    )


@company_member_required
@require_POST
def conversation_deal_create(request, pk):
    """The one-click button on a conversation."""
    from messaging.models import Conversation

    conversation = get_scoped_or_404(Conversation, request.user, pk=pk)
    try:
        deal = services.create_deal_from_conversation(request.user, conversation)
    except ValidationError as exc:
        return _error(request, exc, f"/inbox/{conversation.pk}/")
    if request.htmx:
        return render(request, "deals/_conversation_deals.html", {"conversation": conversation})
    messages.success(request, _("Deal created."))
    return redirect("deal_detail", pk=deal.pk)


# ---------------------------------------------------------------- pipelines


@company_member_required
def pipeline_list(request):
    form = PipelineForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            pipeline = services.create_pipeline(
                request.user, form.cleaned_data["name"], form.cleaned_data["stages"].splitlines()
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Pipeline created."))
            return redirect(f"/deals/?pipeline={pipeline.pk}")
    services.default_pipeline(request.user.company)
    return render(
        request,
        "deals/pipelines.html",
        {"pipelines": selectors.pipelines(request.user).prefetch_related("stages"), "form": form},
        status=400 if form.errors else 200,
    )


@company_member_required
def pipeline_edit(request, pk):
    pipeline = get_scoped_or_404(Pipeline, request.user, pk=pk)
    stages = list(pipeline.stages.order_by("position", "id"))
    if request.method == "POST":
        names = request.POST.getlist("stage_name")
        ids = request.POST.getlist("stage_id")
        rows = []
        for index, name in enumerate(names):
            raw = ids[index] if index < len(ids) else ""
            if not name.strip():
                continue
            rows.append((int(raw) if raw.isdigit() else None, name))
        try:
            services.update_pipeline(request.user, pipeline, request.POST.get("name", ""), rows)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"stages": exc.messages}
            return render(
                request,
                "deals/pipeline_edit.html",
                {
                    "pipeline": pipeline,
                    "stages": stages,
                    "errors": errors,
                    "name": request.POST.get("name", ""),
                },
                status=400,
            )
        messages.success(request, _("Pipeline saved."))
        return redirect("pipelines")
    return render(
        request,
        "deals/pipeline_edit.html",
        {"pipeline": pipeline, "stages": stages, "name": pipeline.name},
    )


@company_member_required
def pipeline_delete(request, pk):
    pipeline = get_scoped_or_404(Pipeline, request.user, pk=pk)
    form = PipelineDeleteForm(request.POST if request.method == "POST" else None, pipeline=pipeline)
    if request.method == "POST" and form.is_valid():
        services.delete_pipeline(request.user, pipeline)
        messages.success(request, _("Pipeline “%(name)s” deleted.") % {"name": pipeline.name})
        return redirect("pipelines")
    return render(
        request,
        "deals/pipeline_delete.html",
        {"pipeline": pipeline, "preview": services.pipeline_delete_preview(pipeline), "form": form},
        status=400 if form.errors else 200,
    )


@company_member_required
def automation(request):
    """Per channel source: do new clients get a deal, and in which pipeline."""
    pipelines = list(selectors.pipelines(request.user))
    settings_by_source = {
        (row.platform, row.source_id): row.pipeline_id
        for row in scoped(ChannelDealSetting, request.user)
    }
    sources = []
    for channel in channels.registered():
        for source in scoped(channel.source_model, request.user):
            key = f"{channel.platform}:{source.pk}"
            sources.append(
                {
                    "key": key,
                    "label": str(source),
                    "platform": channel.platform,
                    "platform_label": dict(channels.platform_choices()).get(
                        channel.platform, channel.platform
                    ),
                    "pipeline_id": settings_by_source.get((channel.platform, source.pk)),
                    "source": source,
                }
            )
    if request.method == "POST":
        by_pk = {pipeline.pk: pipeline for pipeline in pipelines}
        for entry in sources:
            raw = request.POST.get(f"source-{entry['key']}", "")
            if raw == "":
                wanted = None
            elif raw.isdigit() and int(raw) in by_pk:
                wanted = by_pk[int(raw)]
            else:
                messages.error(
                    request, _("Unknown pipeline for %(source)s.") % {"source": entry["label"]}
                )
                return redirect("deals_automation")
            if (wanted.pk if wanted else None) != entry["pipeline_id"]:
                services.set_channel_auto_deal(request.user, entry["source"], wanted)
        messages.success(request, _("Saved."))
        return redirect("deals_automation")
    return render(request, "deals/automation.html", {"sources": sources, "pipelines": pipelines})
