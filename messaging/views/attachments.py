"""Attachment downloads: only for members of the attachment's company. In production nginx
sends the file (X-Accel-Redirect to its internal /protected-media/ location); in development
Django streams it."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.scoping import get_scoped_or_404
from accounts.views import company_member_required

from ..models import Attachment


@company_member_required
def attachment_download(request, pk):
    attachment = get_scoped_or_404(Attachment, request.user, pk=pk)
    if not attachment.stored:
        raise Http404(_("This attachment was recorded but not stored (over the size limit)."))
    filename = attachment.filename or attachment.file.name.rsplit("/", 1)[-1]
    content_type = attachment.content_type or "application/octet-stream"
    if settings.SERVE_MEDIA_WITH_NGINX:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = settings.PROTECTED_MEDIA_URL + attachment.file.name
    else:
        try:
            response = FileResponse(attachment.file.open("rb"), content_type=content_type)
        except FileNotFoundError:  # the row outlived its file (a restored database, say)
            raise Http404(_("The file of this attachment is missing from storage.")) from None
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@company_member_required
@require_POST
def attachment_retry_download(request, pk):
    """The thread's "Try again" on a failed download: htmx gets the message's new `<li>`."""
    from ..services.downloads import retry_download

    attachment = get_scoped_or_404(
        Attachment.objects.select_related("message", "conversation"), request.user, pk=pk
    )
    error = ""
    try:
        attachment = retry_download(request.user, attachment)
    except ValidationError as exc:
        error = " ".join(exc.messages)
    return render(
        request,
        "messaging/_conversation_message.html",
        {
            "conversation": attachment.conversation,
            "message": attachment.message,
            "retry_error": error,
        },
        status=400 if error else 200,
    )
