"""/webhooks/meta/<account uuid>/: Meta's verification challenge (GET) and its deliveries
(POST, accepted only with a valid X-Hub-Signature-256), for a Page or an Instagram account.
A deactivated account answers a signed delivery 200 and stores nothing (Meta would retry a
non-2xx for days); its challenge is still answered, so it can be set up before it is turned on.
A delivery is stored as it came in the webhook inbox and answered at once; a worker ingests it
(webhook_inbox)."""

import json
import logging

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from webhook_inbox.models import Source
from webhook_inbox.services import store

from ..signatures import hub_signature_is_valid
from . import graph
from .models import InstagramAccount, MessengerPage

logger = logging.getLogger(__name__)


def _account(account_uuid):
    for model in (MessengerPage, InstagramAccount):
        if found := model.objects.filter(uuid=account_uuid).first():
            return found
    return None


@csrf_exempt
@require_http_methods(["GET", "POST"])
def meta_webhook(request, account_uuid):
    account = _account(account_uuid)
    if account is None:
        return JsonResponse({"detail": "No such account."}, status=404)
    kind = type(account).__name__
    if request.method == "GET":
        challenge = graph.verification_answer(request.GET, account.verify_token or "")
        if challenge is None:
            logger.warning("meta webhook: %s=%s verification refused", kind, account.pk)
            return JsonResponse({"detail": "Wrong verify token."}, status=403)
        logger.info("meta webhook: %s=%s verified", kind, account.pk)
        return HttpResponse(challenge, content_type="text/plain")

    signature = request.headers.get("X-Hub-Signature-256")
    if not hub_signature_is_valid(request.body, signature, account.app_secret or ""):
        logger.warning("meta webhook: %s=%s signature refused", kind, account.pk)
        return JsonResponse({"detail": "Invalid X-Hub-Signature-256."}, status=403)
    try:
        json.loads(request.body)  # a body that is not JSON is refused here, never stored
    except (ValueError, RecursionError):  # not JSON (or not UTF-8), or nested too deep
        return JsonResponse({"detail": "The body is not JSON."}, status=400)
    if not account.is_active:
        logger.info("meta webhook: %s=%s inactive; delivery ignored", kind, account.pk)
        return JsonResponse({"stored": 0, "ignored": True})
    source = Source.INSTAGRAM if isinstance(account, InstagramAccount) else Source.MESSENGER
    store(source, account.pk, account.company_id, request.body)
    return JsonResponse({"accepted": True})
