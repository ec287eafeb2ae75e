"""Pages for labels (Settings → Labels; on a conversation and on a client), saved views
(the inbox sidebar) and bulk actions on the inbox list. Thin: read through triage.selectors,
write through triage.services, answer a 4xx naming the field for bad input."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseBadRequest, QueryDict
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.scoping import get_scoped_or_404
from accounts.views import company_member_required
from crm.models import Client
from messaging import selectors as messaging_selectors

from . import selectors, services
from .filters import VIEW_FILTERS
from .models import Label


def _errors(exc: ValidationError) -> dict:
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}


# ---------------------------------------------------------------- Settings → Labels


def _label_list_context(request, **extra) -> dict:
    return {
        "labels": selectors.labels_with_usage(request.user),
        "colors": Label.Color.choices,
        "nav_section": "settings",
        **extra,
    }


@company_member_required
@require_http_methods(["GET", "POST"])
def label_list(request):
    """The company's labels with what each is on; admins create them here."""
    if request.method == "POST":
        try:
            label = services.create_label(
                request.user, request.POST.get("name", ""), request.POST.get("color", "")
            )
        except PermissionDenied:
            raise
        except ValidationError as exc:
            context = _label_list_context(
                request, errors=_errors(exc), form_name=request.POST.get("name", "")
            )
            return render(request, "triage/label_list.html", context, status=400)
        messages.success(request, _("Label “%(name)s” created.") % {"name": label.name})
        return redirect("label_list")
    return render(request, "triage/label_list.html", _label_list_context(request))


@company_member_required
@require_http_methods(["GET", "POST"])
def label_edit(request, pk):
    """Rename or recolour a label."""
    label = selectors.get_label(request.user, pk)
    errors = {}
    if request.method == "POST":
        try:
            services.update_label(
                request.user,
                label,
                name=request.POST.get("name", ""),
                color=request.POST.get("color", ""),
            )
        except ValidationError as exc:
            errors = _errors(exc)
        else:
            messages.success(request, _("Label “%(name)s” saved.") % {"name": label.name})
            return redirect("label_list")
    return render(
        request,
        "triage/label_edit.html",
        {
            "label": label,
            "colors": Label.Color.choices,
            "errors": errors,
            "form_name": request.POST.get("name", label.name),
            "form_color": request.POST.get("color", label.color),
            "nav_section": "settings",
        },
        status=400 if errors else 200,
    )


@company_member_required
@require_http_methods(["GET", "POST"])
def label_delete(request, pk):
    """GET: what deleting takes the label off (exact counts); POST: delete it."""
    label = selectors.get_label(request.user, pk)
    if request.method == "POST":
        usage = services.delete_label(request.user, label)
        messages.success(
            request,
            _("Label “%(name)s” deleted (it was on %(c)d conversations and %(k)d clients).")
            % {"name": label.name, "c": usage["conversations"], "k": usage["clients"]},
        )
        return redirect("label_list")
    return render(
        request,
        "triage/label_delete.html",
        {"label": label, "usage": selectors.label_usage(label), "nav_section": "settings"},
    )


# ---------------------------------------------------------------- labels on things


def _panel_response(request, conversation, errors=None):
    context = {
        "conversation": conversation,
        "panel_errors": errors or {},
        **selectors.contact_panel(request.user, conversation),
    }
    return render(request, "triage/_contact_panel.html", context, status=400 if errors else 200)


@company_member_required
@require_POST
def conversation_labels(request, pk):
    """Set the conversation's labels (`labels`: ids, repeated) — or, with `client=1`, its
    client's; htmx gets the side panel again."""
    conversation = messaging_selectors.get_conversation(request.user, pk)
    labels = selectors.labels_by_ids(request.user, request.POST.getlist("labels"))
    if len(labels) != len(set(request.POST.getlist("labels"))):
        errors = {"labels": [_("Choose your company's labels.")]}
        if request.htmx:
            return _panel_response(request, conversation, errors)
        return HttpResponseBadRequest(errors["labels"][0])
    if request.POST.get("client") == "1":
        if conversation.client is None:
            return HttpResponseBadRequest(_("This conversation has no client."))
        services.set_client_labels(request.user, conversation.client, labels)
    else:
        services.set_conversation_labels(request.user, conversation, labels)
    if request.htmx:
        return _panel_response(request, conversation)
    return redirect("conversation_detail", conversation.pk)


@company_member_required
@require_POST
def client_labels(request, pk):
    """Set the client's labels from the client page."""
    client = get_scoped_or_404(Client, request.user, pk=pk)
    labels = selectors.labels_by_ids(request.user, request.POST.getlist("labels"))
    if len(labels) != len(set(request.POST.getlist("labels"))):
        return HttpResponseBadRequest(_("Choose your company's labels."))
    services.set_client_labels(request.user, client, labels)
    messages.success(request, _("Labels saved."))
    return redirect("client_detail", client.pk)


# ---------------------------------------------------------------- saved views


def view_query(view) -> str:
    """The inbox query string of a saved view's filters."""
    return view.query


@company_member_required
@require_http_methods(["GET", "POST"])
def saved_view_list(request):
    """GET: the sidebar list with live counts (a partial); POST: save the posted filters as a
    view (`name`, `shared`, and the filters' fields), then show it."""
    if request.method == "POST":
        raw = {key: request.POST.get(key, "") for key in VIEW_FILTERS}
        try:
            view = services.create_view(
                request.user,
                request.POST.get("name", ""),
                raw,
                shared=request.POST.get("shared") in ("1", "on"),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("inbox")
        messages.success(request, _("View “%(name)s” saved.") % {"name": view.name})
        return redirect(f"{_inbox_url()}?{view_query(view)}")
    return render(
        request,
        "triage/_saved_views.html",
        {
            "saved_views": selectors.views_with_counts(request.user),
            "current_query": request.GET.get("current", ""),
        },
    )


def _inbox_url():
    from django.urls import reverse

    return reverse("inbox")


@company_member_required
@require_http_methods(["GET", "POST"])
def savedview_edit(request, pk):
    """Rename a view, share it or make it personal."""
    view = selectors.get_view(request.user, pk)
    errors = {}
    if request.method == "POST":
        try:
            services.update_view(
                request.user,
                view,
                name=request.POST.get("name", ""),
                shared=request.POST.get("shared") in ("1", "on"),
            )
        except ValidationError as exc:
            errors = _errors(exc)
        else:
            messages.success(request, _("View “%(name)s” saved.") % {"name": view.name})
            return redirect(f"{_inbox_url()}?{view_query(view)}")
    return render(
        request,
        "triage/savedview_edit.html",
        {
            "view": view,
            "errors": errors,
            "may_edit": view.owner_id == request.user.pk or request.user.is_company_admin,
            "form_name": request.POST.get("name", view.name),
            "query": view_query(view),
            "nav_section": "inbox",
        },
        status=400 if errors else 200,
    )


@company_member_required
@require_POST
def savedview_delete(request, pk):
    view = selectors.get_view(request.user, pk)
    services.delete_view(request.user, view)
    messages.success(request, _("View “%(name)s” deleted.") % {"name": view.name})
    return redirect("inbox")


# ---------------------------------------------------------------- the inbox's label menus


@company_member_required
@require_GET
def inbox_label_menus(request):
    """The label filter and the bulk bar's label menu of the inbox, drawn again when a label
    is created, renamed or deleted (static/js/triage.js swaps them in, live). `label`: the
    label the filter has chosen now."""
    return render(
        request,
        "triage/_label_menus.html",
        {
            "labels": selectors.company_labels(request.user),
            "filters": {"label": request.GET.get("label", "").strip()[:20]},
        },
    )


# ---------------------------------------------------------------- bulk actions


@company_member_required
@require_POST
def inbox_bulk(request):
    """One action on the selected conversations (`ids`, repeated; or `all`=1: every
    conversation of the list that `filters`, an inbox query string, shows, on every page):
    assign (`assignee`: a member id, "me" or empty), label/unlabel (`label`), close. Back to
    the list (`next`) with what was done and what failed, each failure named."""
    post = request.POST
    action = post.get("action", "")
    assignee = label = None
    if action == "assign":
        raw = post.get("assignee", "")
        if raw == "me":
            assignee = request.user
        elif raw:
            members = messaging_selectors.company_members(request.user)
            assignee = members.filter(pk=raw).first() if raw.isdigit() else None
            if assignee is None:
                return _bulk_back(request, error=_("Choose a member of your company."))
    if action in ("label", "unlabel"):
        raw = post.get("label", "")
        found = selectors.labels_by_ids(request.user, [raw])
        if not found:
            return _bulk_back(request, error=_("Choose one of your company's labels."))
        label = found[0]
    try:
        if post.get("all") == "1":
            filters = messaging_selectors.inbox_filters(QueryDict(post.get("filters", "")))
            result = services.bulk_update_matching(
                request.user,
                messaging_selectors.filtered_inbox(request.user, filters),
                action,
                assignee=assignee,
                label=label,
            )
        else:
            result = services.bulk_update(
                request.user, post.getlist("ids"), action, assignee=assignee, label=label
            )
    except ValidationError as exc:
        return _bulk_back(request, error=" ".join(exc.messages))
    if result.done:
        messages.success(
            request, _("Done for %(count)d conversations.") % {"count": len(result.done)}
        )
    for failure in result.failed:
        messages.error(
            request,
            _("Conversation #%(id)s: %(error)s") % {"id": failure["id"], "error": failure["error"]},
        )
    return _bulk_back(request)


def _bulk_back(request, error=None):
    if error:
        messages.error(request, error)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = _inbox_url()
    response = redirect(target)
    if error:
        response.status_code = 303  # still a redirect; the message names the problem
    return response
