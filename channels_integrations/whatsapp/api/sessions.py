"""WhatsApp connections over the API: sessions (QR, status, health, logout), sending to a
phone number under the company's rate limit, and metrics."""

import math

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.response import Response

from accounts.permissions import IsCompanyMember
from accounts.scoping import scoped
from crm import coordination, idempotency
from crm.api.base import nested_errors
from crm.api.status import reader_language
from messaging.api.inbox import TemplateSendSerializer
from messaging.payloads import message_payload

from ...models import WhatsAppNumber, WhatsAppSession
from .. import metrics, outbound, sessions


class SessionSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="null: no session yet")
    number_id = serializers.IntegerField()
    phone = serializers.CharField()
    display_name = serializers.CharField()
    status = serializers.CharField()
    status_label = serializers.CharField()
    waiting_for_capacity = serializers.BooleanField(
        help_text="no connection host has room for this session now"
    )
    healthy = serializers.BooleanField()
    health = serializers.CharField()
    last_connected_at = serializers.DateTimeField(allow_null=True)
    last_heartbeat_at = serializers.DateTimeField(allow_null=True)
    heartbeat_age_seconds = serializers.FloatField(allow_null=True)
    reconnect_attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    last_error_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, session):
        with reader_language(self.context.get("request")):  # status_label and health: lazy
            return super().to_representation(
                {
                    **sessions.session_payload(session),
                    "id": session.pk,
                    "phone": str(session.number.phone),
                    "display_name": session.number.display_name,
                }
            )


class QrSessionSerializer(SessionSerializer):
    qr = serializers.CharField(allow_null=True, help_text="the raw QR string")
    qrDataUrl = serializers.CharField(allow_null=True, help_text="a PNG data URL")  # noqa: N815
    qrTerminal = serializers.CharField(allow_null=True, help_text="for a terminal")  # noqa: N815

    def to_representation(self, payload):
        session, qr = payload
        return {**SessionSerializer(session, context=self.context).data, **qr}


class MetricsSerializer(serializers.Serializer):
    total_sessions = serializers.IntegerField()
    connected = serializers.IntegerField()
    messages_sent = serializers.IntegerField()
    messages_received = serializers.IntegerField()
    qr_generated = serializers.IntegerField()
    errors = serializers.IntegerField()
    failed_reconnects = serializers.IntegerField()
    last_error = serializers.JSONField(allow_null=True)


def company_metrics(company_id: int) -> dict:
    counts = WhatsAppSession.objects.filter(number__company_id=company_id)
    return {
        "total_sessions": counts.count(),
        "connected": counts.filter(status=WhatsAppSession.Status.CONNECTED).count(),
        **metrics.counters(company_id),
    }


class WhatsAppSessionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Every session of the company with status and health; the list carries the metrics."""

    permission_classes = [IsCompanyMember]
    serializer_class = SessionSerializer

    def get_queryset(self):
        return (
            scoped(WhatsAppSession, self.request.user)
            .exclude(number__status=WhatsAppNumber.Status.DELETING)
            .select_related("number")
            .order_by("id")
        )

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        response.data["metrics"] = company_metrics(request.user.company_id)
        return response


class SendToPhoneSerializer(serializers.Serializer):
    phone = PhoneNumberField(help_text="E.164, e.g. +4915112345678")
    message = serializers.CharField(
        max_length=4096,
        trim_whitespace=True,
        required=False,
        help_text="free text (from a Cloud number: only to a phone that wrote within 24 h)",
    )
    template = TemplateSendSerializer(
        required=False,
        help_text="Cloud numbers: an approved template of the number, instead of `message` "
        "(reaches any phone)",
    )
    quoted = serializers.CharField(
        max_length=255, required=False, allow_blank=True, help_text="a WhatsApp message id"
    )

    def validate(self, attrs):
        if "message" not in attrs and "template" not in attrs:
            raise serializers.ValidationError({"message": [_("This field is required.")]})
        if "message" in attrs and "template" in attrs:
            raise serializers.ValidationError(
                {"message": [_("Send either a message or a template, not both.")]}
            )
        return attrs


class SessionActionsMixin:
    """Session and send actions of WhatsAppNumberViewSet (/whatsapp/numbers/{id}/...)."""

    @staticmethod
    def _session_of(number) -> WhatsAppSession:
        """The number's session row, or an unsaved stopped one (a read creates nothing)."""
        session = WhatsAppSession.objects.filter(number=number).first()
        session = session or WhatsAppSession(number=number)
        session.number = number
        return session

    def _session_response(self, number):
        return Response(
            SessionSerializer(self._session_of(number), context={"request": self.request}).data
        )

    @extend_schema(request=None, responses=QrSessionSerializer)
    @action(detail=True, methods=["post"], url_path="session/initialize")
    def session_initialize(self, request, pk=None):
        number = self.get_object()
        payload = sessions.initialize_session(request.user, number)
        session = WhatsAppSession.objects.select_related("number").get(number=number)
        qr = {key: payload.get(key) for key in ("qr", "qrDataUrl", "qrTerminal")}
        return Response(QrSessionSerializer((session, qr), context={"request": request}).data)

    @extend_schema(responses=SessionSerializer)
    @action(detail=True, methods=["get"], url_path="session/status")
    def session_status(self, request, pk=None):
        return self._session_response(self.get_object())

    @extend_schema(responses={200: SessionSerializer, 503: SessionSerializer})
    @action(detail=True, methods=["get"], url_path="session/health")
    def session_health(self, request, pk=None):
        session = self._session_of(self.get_object())
        healthy, _ = sessions.health(session)
        return Response(
            SessionSerializer(session, context={"request": request}).data,
            status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @extend_schema(request=None, responses=SessionSerializer)
    @action(detail=True, methods=["post"], url_path="session/logout")
    def session_logout(self, request, pk=None):
        number = self.get_object()
        sessions.logout_session(request.user, number)
        return self._session_response(number)

    @extend_schema(
        request=SendToPhoneSerializer,
        parameters=[idempotency.parameter()],
        responses={
            202: inline_serializer("QueuedMessage", {"message": serializers.DictField()}),
            422: OpenApiResponse(description="This Idempotency-Key was used for another request"),
            429: inline_serializer("RateLimited", {"detail": serializers.CharField()}),
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[IsCompanyMember])
    def send(self, request, pk=None):
        number = self.get_object()
        return idempotency.run(request, lambda: self._send(request, number))

    def _send(self, request, number):
        serializer = SendToPhoneSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limit = settings.WHATSAPP_SEND_RATE_PER_MINUTE
        wait = coordination.acquire_slot_or_local(
            f"whatsapp:send-rate:{request.user.company_id}", limit, 60
        )
        if wait:
            retry_after = max(1, math.ceil(wait))
            return Response(
                {
                    "detail": _(
                        "At most %(limit)s messages per minute; retry in %(retry_after)s s."
                    )
                    % {"limit": limit, "retry_after": retry_after}
                },
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(retry_after)},
            )
        data = serializer.validated_data
        try:
            message = outbound.send_to_phone(
                request.user,
                number,
                str(data["phone"]),
                data.get("message", ""),
                data.get("quoted", ""),
                template=data.get("template"),
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError(nested_errors(exc)) from None
        return Response({"message": message_payload(message)}, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses=MetricsSerializer)
@api_view(["GET"])
@permission_classes([IsCompanyMember])
def whatsapp_metrics(request):
    """The company's WhatsApp counters (the same ones /metrics exports for every company)."""
    return Response(company_metrics(request.user.company_id))
