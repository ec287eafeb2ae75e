"""Dashboard and client pages. Reads come from crm.selectors, writes go through crm.services."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms.models import model_to_dict
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.vary import vary_on_headers

from accounts.scoping import get_scoped_or_404
from accounts.views import company_member_required
from crm import selectors, services
from crm.forms import ClientForm
from crm.models import Client
from deals import selectors as deal_selectors
from triage import selectors as triage_selectors

CLIENTS_PER_PAGE = 50


@company_member_required
def dashboard(request):
    return render(
        request, "crm/dashboard.html", {"counts": selectors.dashboard_counts(request.user)}
    )


@company_member_required
@vary_on_headers("HX-Request")  # the same URL answers a full page or the table partial
def client_list(request):
    query = request.GET.get("q", "").strip()
    clients = selectors.search_clients(request.user, query)
    page = Paginator(clients, CLIENTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "q": query}
    # htmx live search swaps only the table; a history restore needs the whole page.
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "crm/_client_table.html", context)
    return render(request, "crm/client_list.html", context)


@company_member_required
def client_detail(request, pk):
    client = get_scoped_or_404(Client, request.user, pk=pk)
    return render(
        request,
        "crm/client_detail.html",
        {
            "client": client,
            "conversations": selectors.client_conversations(request.user, client),
            "deals": deal_selectors.client_deals(request.user, client),
            "merges": client.merges.select_related("actor")[:20],
            "client_label_list": triage_selectors.client_labels(client),
            "labels": list(triage_selectors.company_labels(request.user)),
        },
    )


@company_member_required
def client_create(request):
    form = ClientForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            client = services.create_client(request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)  # {"phone": [...]} lands on the phone field
        else:
            messages.success(request, _("Client “%(client)s” created.") % {"client": client})
            return redirect("client_detail", pk=client.pk)
    return render(request, "crm/client_form.html", {"form": form})


@company_member_required
def client_edit(request, pk):
    client = get_scoped_or_404(Client, request.user, pk=pk)
    title = str(client)  # taken before the service assigns (possibly rejected) new values
    if request.method == "POST":
        form = ClientForm(request.POST)
    else:
        form = ClientForm(initial=model_to_dict(client, fields=services.CLIENT_FIELDS))
    if form.is_valid():
        try:
            services.update_client(request.user, client, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Client “%(client)s” saved.") % {"client": client})
            return redirect("client_detail", pk=client.pk)
    return render(request, "crm/client_form.html", {"form": form, "client": client, "title": title})
