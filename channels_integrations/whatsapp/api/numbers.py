"""/whatsapp/numbers/: the company's numbers (sessions' actions from sessions.py)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from crm.api.base import WriteOnlySecretField

from ...api.serializers import SecretsSerializerMixin
from ...api.views import ChannelViewSet
from ...models import WhatsAppNumber
from .. import numbers as services
from .sessions import SessionActionsMixin


class WhatsAppNumberSerializer(SecretsSerializerMixin, serializers.ModelSerializer):
    secret_fields = ("cloud_access_token", "cloud_app_secret", "cloud_verify_token")
    phone = PhoneNumberField()
    cloud_access_token = WriteOnlySecretField()
    cloud_app_secret = WriteOnlySecretField()
    cloud_verify_token = WriteOnlySecretField()

    class Meta:
        model = WhatsAppNumber
        fields = [
            "id",
            "uuid",
            "phone",
            "display_name",
            "provider",
            "is_active",
            "status",
            "last_error",
            "cloud_phone_number_id",
            "cloud_business_account_id",
            "cloud_access_token",
            "cloud_app_secret",
            "cloud_verify_token",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "uuid", "status", "last_error", "created_at", "updated_at"]


class DeletionPreviewSerializer(serializers.Serializer):
    bots = serializers.IntegerField()
    bot_rules = serializers.IntegerField()
    conversations = serializers.IntegerField()
    messages = serializers.IntegerField()
    broadcasts = serializers.IntegerField()
    broadcast_recipients = serializers.IntegerField()
    sessions = serializers.IntegerField()
    total = serializers.IntegerField(help_text="every row that goes, the number included")
    irreversible = serializers.BooleanField()
    synchronous = serializers.BooleanField(help_text="false: a worker deletes it (202)")


class DeletionStartedSerializer(serializers.Serializer):
    status = serializers.CharField(required=False)
    detail = serializers.CharField(required=False)
    number_id = serializers.IntegerField()


class WhatsAppNumberViewSet(SessionActionsMixin, ChannelViewSet):
    model = WhatsAppNumber
    serializer_class = WhatsAppNumberSerializer

    def get_queryset(self):
        # A number being deleted is gone for everyone already.
        return super().get_queryset().exclude(status=WhatsAppNumber.Status.DELETING)

    def perform_update(self, serializer):
        is_active = serializer.validated_data.pop("is_active", None)
        super().perform_update(serializer)
        if is_active is not None and is_active != serializer.instance.is_active:
            services.set_number_active(self.request.user, serializer.instance, is_active)

    @extend_schema(responses=DeletionPreviewSerializer)
    @action(detail=True, methods=["get"], url_path="deletion-preview")
    def deletion_preview(self, request, pk=None):
        counts = services.deletion_preview(self.get_object())
        return Response(
            dict(
                counts,
                irreversible=True,
                synchronous=counts["total"] <= settings.NUMBER_DELETE_SYNC_LIMIT,
            )
        )

    @extend_schema(
        responses={204: None, 202: DeletionStartedSerializer, 503: DeletionStartedSerializer}
    )
    def destroy(self, request, *args, **kwargs):
        number = self.get_object()
        try:
            outcome = services.delete_number(request.user, number)
        except services.NumberDeletionFailed as failure:
            return Response(
                {"detail": failure.cause, "number_id": number.pk},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        if outcome == "deleting":
            return Response(
                {"status": "deleting", "number_id": number.pk}, status=status.HTTP_202_ACCEPTED
            )
        return Response(status=status.HTTP_204_NO_CONTENT)
