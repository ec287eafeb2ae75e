"""Client pages beyond view/edit: merge, delete with a preview, CSV import and export."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.scoping import get_scoped_or_404
from accounts.views import company_member_required
from crm import client_services, selectors
from crm.models import Client


@company_member_required
def client_merge(request, pk):
    """Search for the duplicate, then merge it into this client (this one is kept)."""
    client = get_scoped_or_404(Client, request.user, pk=pk)
    if request.method == "POST":
        other = get_scoped_or_404(Client, request.user, pk=request.POST.get("other"))
        try:
            record = client_services.merge_clients(request.user, client, other)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("client_merge", pk=client.pk)
        messages.success(
            request,
            _("Merged: %(conversations)d conversations and %(deals)d deals moved here.")
            % {"conversations": record.conversations_moved, "deals": record.deals_moved},
        )
        return redirect("client_detail", pk=client.pk)
    query = request.GET.get("q", "").strip()
    candidates = (
        selectors.search_clients(request.user, query).exclude(pk=client.pk)[:20] if query else []
    )
    return render(
        request, "crm/client_merge.html", {"client": client, "q": query, "candidates": candidates}
    )


@company_member_required
def client_delete(request, pk):
    client = get_scoped_or_404(Client, request.user, pk=pk)
    if request.method == "POST":
        client_services.delete_client(request.user, client)
        messages.success(request, _("Client “%(client)s” deleted.") % {"client": client})
        return redirect("clients")
    return render(
        request,
        "crm/client_delete.html",
        {"client": client, "preview": client_services.delete_preview(client)},
    )


@company_member_required
def clients_import(request):
    errors = None
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            errors = [(0, "file", _("Choose a CSV file."))]
        else:
            try:
                count = client_services.import_clients_csv(
                    request.user, upload.read(client_services.IMPORT_MAX_BYTES + 1)
                )
            except client_services.ImportErrors as exc:
                errors = exc.lines
            else:
                messages.success(request, _("%(n)d clients imported.") % {"n": count})
                return redirect("clients")
    return render(
        request,
        "crm/clients_import.html",
        {"errors": errors, "columns": client_services.CSV_COLUMNS},
        status=400 if errors else 200,
    )


@company_member_required
def clients_export(request):
    response = StreamingHttpResponse(
        client_services.export_clients_csv(request.user), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="clients-{stamp}.csv"'
    return response
