"""The Reports page (charts drawn by static/js/reports.js from json_script data) and one CSV
download per report."""

import csv

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.scoping import get_scoped_or_404
from accounts.views import company_member_required
from deals import selectors as deal_selectors
from deals.models import Pipeline

from . import selectors

# name -> (title, [(column title, key)])
REPORTS = {
    "response-times": (
        gettext_lazy("Response and resolution times"),
        [
            (gettext_lazy("Conversations"), "conversations"),
            (gettext_lazy("Answered"), "answered"),
            (gettext_lazy("First response, median (s)"), "first_response_median"),
            (gettext_lazy("First response, p90 (s)"), "first_response_p90"),
            (gettext_lazy("Resolved"), "resolved"),
            (gettext_lazy("Resolution, median (s)"), "resolution_median"),
            (gettext_lazy("Resolution, p90 (s)"), "resolution_p90"),
        ],
    ),
    "by-channel": (
        gettext_lazy("Conversations by channel"),
        [(gettext_lazy("Channel"), "label"), (gettext_lazy("Conversations"), "conversations")],
    ),
    "by-agent": (
        gettext_lazy("Conversations by agent"),
        [
            (gettext_lazy("Agent"), "agent"),
            (gettext_lazy("Conversations"), "conversations"),
            (gettext_lazy("Answered"), "answered"),
            (gettext_lazy("Closed"), "closed"),
        ],
    ),
    "messages-per-day": (
        gettext_lazy("Messages per day"),
        [
            (gettext_lazy("Day"), "day"),
            (gettext_lazy("Inbound"), "inbound"),
            (gettext_lazy("Outbound"), "outbound"),
        ],
    ),
    "deal-funnel": (
        gettext_lazy("Deal funnel"),
        [
            (gettext_lazy("Stage"), "stage"),
            (gettext_lazy("Deals that reached it"), "deals"),
            (gettext_lazy("Of them won"), "won"),
        ],
    ),
    "won-amounts": (
        gettext_lazy("Won amount per period"),
        [
            (gettext_lazy("Period from"), "period"),
            (gettext_lazy("Currency"), "currency"),
            (gettext_lazy("Deals"), "deals"),
            (gettext_lazy("Amount"), "amount"),
        ],
    ),
}


def _pipeline(request):
    pk = request.GET.get("pipeline")
    if pk:
        return get_scoped_or_404(Pipeline, request.user, pk=pk)
    return deal_selectors.pipelines(request.user).filter(is_default=True).first()


def compute(name: str, company_id: int, period, pipeline, fill: bool = True) -> list[dict]:
    """One report's rows. `fill=False`: the caller already stored the period's conversation
    days (selectors.fill_conversation_days), as the page does once for its three reports."""
    if name == "response-times":
        return [selectors.response_times(company_id, period, fill=fill)]
    if name == "by-channel":
        return selectors.conversations_by_channel(company_id, period, fill=fill)
    if name == "by-agent":
        rows = selectors.conversations_by_agent(company_id, period, fill=fill)
        for row in rows:
            row["agent"] = row["agent"] or _("Unassigned")
        return rows
    if name == "messages-per-day":
        return selectors.messages_per_day(company_id, period)
    if name == "deal-funnel":
        return selectors.deal_funnel(company_id, period, pipeline.pk if pipeline else None)
    if name == "won-amounts":
        return selectors.won_amounts(company_id, period)
    raise Http404


@company_member_required
def reports(request):
    period, errors = selectors.parse_period(request.GET)
    pipeline = _pipeline(request)
    company_id = request.user.company_id
    selectors.fill_conversation_days(company_id, period)
    data = {name: compute(name, company_id, period, pipeline, fill=False) for name in REPORTS}
    for row in data["won-amounts"]:
        row["amount"] = str(row["amount"])
    return render(
        request,
        "reports/reports.html",
        {
            "period": period,
            "errors": errors,
            "pipeline": pipeline,
            "pipelines": deal_selectors.pipelines(request.user),
            "data": data,
            "times": data["response-times"][0],
            "titles": {name: str(title) for name, (title, _cols) in REPORTS.items()},
            "query": request.GET.urlencode(),
            "labels": {
                "conversations": _("Conversations"),
                "answered": _("Answered"),
                "closed": _("Closed"),
                "inbound": _("Inbound"),
                "outbound": _("Outbound"),
                "deals": _("Deals that reached the stage"),
                "won": _("Won"),
                "unassigned": _("Unassigned"),
            },
        },
        status=400 if errors else 200,
    )


@company_member_required
def report_csv(request, name):
    if name not in REPORTS:
        raise Http404
    period, errors = selectors.parse_period(request.GET)
    if errors:
        return HttpResponse(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    rows = compute(name, request.user.company_id, period, _pipeline(request))
    _title, columns = REPORTS[name]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{name}-{period.start.isoformat()}-{period.end.isoformat()}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow([str(title) for title, _key in columns])
    for row in rows:
        writer.writerow(["" if row.get(key) is None else row.get(key) for _title, key in columns])
    return response
