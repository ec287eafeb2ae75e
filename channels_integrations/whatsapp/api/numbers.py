"""/whatsapp/numbers/: the company's numbers (sessions' actions from sessions.py)."""

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from crm.api.base import WriteOnlySecretField
from crm.api.status import StatusLabelMixin

from ...api.serializers import SecretsSerializerMixin
from ...api.views import ChannelViewSet
from ...models import WhatsAppNumber, WhatsAppTemplate
from .. import numbers as services
from .. import templates as template_services
from .sessions import SessionActionsMixin


class WhatsAppNumberSerializer(
    StatusLabelMixin, SecretsSerializerMixin, serializers.ModelSerializer
):
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
            "status_label",
            "last_error",
            "cloud_phone_number_id",
            "cloud_business_account_id",
            "cloud_access_token",
            "cloud_app_secret",
            "cloud_verify_token",
            "team",
            "distribution",
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
    templates = serializers.IntegerField(help_text="message templates as synced (Meta keeps them)")
    total = serializers.IntegerField(help_text="every row that goes, the number included")
    irreversible = serializers.BooleanField()
    synchronous = serializers.BooleanField(help_text="false: a worker deletes it (202)")


class DeletionStartedSerializer(serializers.Serializer):
    status = serializers.CharField(required=False)
    detail = serializers.CharField(required=False)
    number_id = serializers.IntegerField()


class TemplateSyncErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class TemplateSerializer(serializers.ModelSerializer):
    offered = serializers.SerializerMethodField(
        help_text="approved and sendable from here: what pickers offer"
    )

    class Meta:
        model = WhatsAppTemplate
        fields = [
            "id",
            "name",
            "language",
            "category",
            "status",
            "components",
            "variables",
            "supported",
            "header_format",
            "has_header_file",
            "offered",
            "synced_at",
        ]
        read_only_fields = fields

    has_header_file = serializers.SerializerMethodField(
        help_text="a media header's file is set (on the number's templates page)"
    )

    def get_has_header_file(self, template) -> bool:
        return bool(template.header_file)

    def get_offered(self, template) -> bool:
        return template.is_offered


class TemplateSyncSerializer(serializers.Serializer):
    templates = serializers.IntegerField(help_text="templates Meta listed")
    approved = serializers.IntegerField()
    removed = serializers.IntegerField(help_text="stored templates Meta no longer lists")


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

    @extend_schema(
        summary="The number's message templates (as last synced)",
        responses=TemplateSerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def templates(self, request, pk=None):
        rows = template_services.number_templates(self.get_object())
        return Response(TemplateSerializer(rows, many=True).data)

    @extend_schema(
        summary="Read the number's templates from Meta now",
        request=None,
        responses={
            200: TemplateSyncSerializer,
            502: OpenApiResponse(
                TemplateSyncErrorSerializer, description="Meta refused or could not be reached"
            ),
        },
    )
    @action(detail=True, methods=["post"], url_path="templates/sync")
    def sync_templates(self, request, pk=None):
        number = self.get_object()
        if number.provider != WhatsAppNumber.Provider.CLOUD:
            raise serializers.ValidationError(
                {"provider": [_("Only Cloud API numbers have message templates.")]}
            )
        if not number.cloud_business_account_id:
            raise serializers.ValidationError(
                {"cloud_business_account_id": [_("Set the business account id first.")]}
            )
        try:
            counts = template_services.sync_templates(number)
        except template_services.TemplateSyncError as exc:
            return Response({"detail": exc.reason}, status=status.HTTP_502_BAD_GATEWAY)
        return Response(counts)

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
