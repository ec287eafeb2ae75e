"""Export pages: start one (the delete pages' "Export first"), its card (re-fetched by
static/js/exports.js as it progresses), and the download — tenant-scoped (404) and
permission-checked (403), streamed from disk (FileResponse, or nginx in production)."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.views import company_member_required

from . import selectors, services
from .models import ExportJob
from .templatetags.exports import offer_context


@company_member_required
@require_POST
def export_start(request):
    kind = request.POST.get("kind", "")
    object_id = request.POST.get("object_id", "")
    if not object_id.isdigit():
        raise Http404
    try:
        services.start_export(request.user, kind, int(object_id))
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=400)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "dashboard"
    return redirect(f"{target}#export-offer" if target.startswith("/") else target)


@company_member_required
def export_card(request, pk):
    """The offer card of this job's subject, as the delete page shows it (a fragment)."""
    job = selectors.job_or_404(request.user, pk)
    services.check_access(request.user, job)
    context = offer_context(request.user, job.kind, job.object_id, request.GET.get("next", ""))
    return render(request, "exports/_offer.html", context)


@company_member_required
def export_download(request, pk):
    job = selectors.job_or_404(request.user, pk)
    services.check_access(request.user, job)
    return download_response(job)


def download_response(job: ExportJob, content_type: str = "application/zip"):
    """The archive, streamed from disk (never read whole); 404 in words when not there."""
    if job.state != ExportJob.State.DONE or not job.file:
        raise Http404(_("This export has no archive to download (not finished, or expired)."))
    if settings.SERVE_MEDIA_WITH_NGINX:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = settings.PROTECTED_MEDIA_URL + job.file
    else:
        try:
            handle = open(services.archive_path(job.file), "rb")  # noqa: SIM115 (FileResponse closes it)
        except FileNotFoundError:
            raise Http404(_("The archive is missing from storage; export again.")) from None
        response = FileResponse(handle, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, job.download_name)
    response["X-Content-Type-Options"] = "nosniff"
    return response
