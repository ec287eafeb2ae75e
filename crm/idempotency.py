"""`Idempotency-Key` for API requests that create or send: the first request with a key runs;
a repeat by the same user within IDEMPOTENCY_TTL gets the first answer (header
`Idempotent-Replayed: true`) and changes nothing; the same key with another request (method,
path or body) is a 422 naming the header.

Kept in PostgreSQL, in the same transaction as the request's own writes: the key row is
inserted first (`ON CONFLICT DO NOTHING`), so a concurrent duplicate waits on the unique index
until the first commits and then replays its answer; a request that fails rolls back and leaves
no key, so a retry runs again. Works while Redis is down, and survives a restart of daphne
between a client's request and its retry.
"""

import hashlib
import json
import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from .db.upsert import insert_unless_conflict
from .models import IdempotencyKey

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
KEY_MAX = 255


class IdempotencyKeyError(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message, code=None):
        super().__init__({HEADER: [message]}, code)


class IdempotencyKeyReused(IdempotencyKeyError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY


def parameter(required: bool = False) -> OpenApiParameter:
    """The header in the OpenAPI schema."""
    return OpenApiParameter(
        HEADER,
        str,
        OpenApiParameter.HEADER,
        required=required,
        description=(
            "A unique value (e.g. a UUID) per operation; send the same value again when you "
            "retry it. A repeat within 24 hours returns the first answer and does nothing "
            "more; the same key with a different request is refused with 422."
        ),
    )


class Idempotency:
    def __init__(self, request):
        self.request = request
        self.key = request.headers.get(HEADER, "").strip()
        if len(self.key) > KEY_MAX:
            raise IdempotencyKeyError(_("At most %(count)d characters.") % {"count": KEY_MAX})
        body = json.dumps(request.data, sort_keys=True, default=str)
        self.fingerprint = hashlib.sha256(
            f"{request.method} {request.path}\n{body}".encode()
        ).hexdigest()

    def require(self) -> None:
        if not self.key:
            raise IdempotencyKeyError(
                _(
                    "This header is required: send a new unique value (e.g. a UUID) with each "
                    "request, and the same value again when you retry it."
                )
            )

    def run(self, perform) -> Response:
        """`perform()` once per key; without a key, simply `perform()`."""
        if not self.key:
            return perform()
        user = self.request.user
        with transaction.atomic():
            record = self._take(user)
            if record.status_code is not None:
                return self._replay(record)
            response = perform()
            if not status.is_success(response.status_code):
                transaction.set_rollback(True)  # nothing happened: a retry runs again
                return response
            record.status_code = response.status_code
            record.body = json.loads(JSONRenderer().render(response.data) or b"null")
            record.save(update_fields=["status_code", "body"])
        return response

    def _take(self, user) -> IdempotencyKey:
        """Our new key row, or the committed one of an earlier request (waiting, on the unique
        index, for a concurrent first request to finish)."""
        now = timezone.now()
        record = IdempotencyKey(user=user, key=self.key, fingerprint=self.fingerprint)
        if insert_unless_conflict(record):
            return record
        existing = IdempotencyKey.objects.select_for_update().get(user=user, key=self.key)
        if existing.created_at < now - TTL:  # expired: the key starts afresh
            existing.fingerprint, existing.created_at = self.fingerprint, now
            existing.status_code = existing.body = None
            existing.save()
            return existing
        if existing.fingerprint != self.fingerprint:
            raise IdempotencyKeyReused(_("This key was already used for a different request."))
        return existing

    def _replay(self, record: IdempotencyKey) -> Response:
        logger.info("api: idempotent replay of %s %s", self.request.method, self.request.path)
        return Response(
            record.body, status=record.status_code, headers={"Idempotent-Replayed": "true"}
        )


def run(request, perform) -> Response:
    return Idempotency(request).run(perform)


def purge_expired() -> int:
    """Drop keys older than TTL (the sweeper calls this)."""
    deleted, _rows = IdempotencyKey.objects.filter(created_at__lt=timezone.now() - TTL).delete()
    return deleted
