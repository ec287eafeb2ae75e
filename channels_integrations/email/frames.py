"""The sanitised HTML of an email, for the sandboxed frame of the conversation page.

A page of its own (not `srcdoc`), so it carries its own strict Content-Security-Policy: no
scripts, no requests but inline images, and with `sandbox` in the policy even when opened
outside the frame. Remote images (`https:`) are allowed only when the agent asked for this
message (`?remote=1`). Members of the conversation's company only: anyone else gets a 404."""

import nh3
from django.http import Http404, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from accounts.views import company_member_required
from messaging import selectors

FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"  # links open in a new tab


def frame_policy(remote_images: bool) -> str:
    images = "https: data: cid:" if remote_images else "data: cid:"
    return (
        f"default-src 'none'; img-src {images}; style-src 'unsafe-inline'; "
        f"base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox {FRAME_SANDBOX}"
    )


@company_member_required
@require_GET
@never_cache
@xframe_options_sameorigin
def message_html(request, pk, message_pk):
    conversation = selectors.get_conversation(request.user, pk)
    message = selectors.get_conversation_message(conversation, message_pk)
    html = (message.metadata or {}).get("html")
    if not html:
        raise Http404("This message has no HTML.")
    remote = request.GET.get("remote") == "1"
    response = HttpResponse(
        # Sanitised when imported; cleaned again here, so nothing stored otherwise is shown.
        render_to_string("channels_integrations/email_frame.html", {"html": nh3.clean(html)}),
        content_type="text/html; charset=utf-8",
    )
    response["Content-Security-Policy"] = frame_policy(remote)
    response["Referrer-Policy"] = "no-referrer"
    response["X-Content-Type-Options"] = "nosniff"
    return response
