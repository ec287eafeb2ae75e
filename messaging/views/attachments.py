"""Attachment downloads: only for members of the attachment's company. In production nginx
sends the file (X-Accel-Redirect to its internal /protected-media/ location); in development
Django streams it."""

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _

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
