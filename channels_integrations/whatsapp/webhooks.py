"""/webhooks/whatsapp/<number uuid>/: the Cloud API's verification challenge (GET) and its
deliveries (POST, accepted only with a valid X-Hub-Signature-256). A delivery is stored as it
came in the webhook inbox and answered at once; a worker ingests it (webhook_inbox)."""

import json
import logging

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from webhook_inbox.models import Source
from webhook_inbox.services import store

from ..models import WhatsAppNumber
from ..signatures import hub_signature_is_valid
from . import cloud

logger = logging.getLogger(__name__)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request, number_uuid):
    number = WhatsAppNumber.objects.filter(
        uuid=number_uuid, provider=WhatsAppNumber.Provider.CLOUD
    ).first()
    if number is None:
        return JsonResponse({"detail": "No such WhatsApp number."}, status=404)
    if request.method == "GET":
        challenge = cloud.verification_answer(request.GET, number.cloud_verify_token)
        if challenge is None:
            logger.warning("cloud webhook: number=%s verification refused", number.pk)
            return JsonResponse({"detail": "Wrong verify token."}, status=403)
        logger.info("cloud webhook: number=%s verified", number.pk)
        return HttpResponse(challenge, content_type="text/plain")

    signature = request.headers.get("X-Hub-Signature-256")
    if not hub_signature_is_valid(request.body, signature, number.cloud_app_secret):
        logger.warning("cloud webhook: number=%s signature refused", number.pk)
        return JsonResponse({"detail": "Invalid X-Hub-Signature-256."}, status=403)
    try:
        payload = json.loads(request.body)
    except (ValueError, RecursionError):  # not JSON, or nested past the decoder's limit
        return JsonResponse({"detail": "The body is not JSON."}, status=400)
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        # Nothing here is a delivery: no readable part to store.
        logger.warning("cloud webhook: number=%s a body without entries refused", number.pk)
        return JsonResponse(
            {"entry": ["A webhook delivery is a JSON object with an `entry` list."]}, status=400
        )
    if not number.is_active or number.status == WhatsAppNumber.Status.DELETING:
        # Acknowledged (Meta would retry for days otherwise), nothing stored.
        logger.info("cloud webhook: number=%s inactive; delivery ignored", number.pk)
        return JsonResponse({"stored": 0, "ignored": True})
    store(Source.WHATSAPP_CLOUD, number.pk, number.company_id, request.body)
    return JsonResponse({"accepted": True})
