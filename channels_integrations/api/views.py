from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import IsCompanyAdminOrReadOnly
from crm.api.base import CompanyScopedViewSet

from .. import services
from ..email import smtp as email_smtp
from ..models import EmailAccount, TelegramAccount, WhatsAppNumber
from ..telegram import login as telegram_login
from .serializers import EmailAccountSerializer, TelegramAccountSerializer, WhatsAppNumberSerializer
from .whatsapp import SessionActionsMixin


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


class ChannelViewSet(CompanyScopedViewSet):
    """Agents read; company admins create, edit and delete. Writes go through services."""

    permission_classes = [IsCompanyAdminOrReadOnly]

    def perform_create(self, serializer):
        serializer.instance = services.save_channel(
            self.request.user, self.model, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.save_channel(
            self.request.user, self.model, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.delete_channel(self.request.user, instance)


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


class LoginCodeSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=16)


class LoginPasswordSerializer(serializers.Serializer):
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class LoginStepSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["code_sent", "password_needed", "connected"])


class TelegramAccountViewSet(ChannelViewSet):
    """Accounts, and logging one in: send-code -> code -> password (when 2FA is on)."""

    model = TelegramAccount
    serializer_class = TelegramAccountSerializer

    @extend_schema(request=None, responses=LoginStepSerializer)
    @action(detail=True, methods=["post"], url_path="login/send-code")
    def login_send_code(self, request, pk=None):
        telegram_login.send_code(request.user, self.get_object())
        return Response({"status": "code_sent"})

    @extend_schema(request=LoginCodeSerializer, responses=LoginStepSerializer)
    @action(detail=True, methods=["post"], url_path="login/code")
    def login_code(self, request, pk=None):
        account = self.get_object()
        serializer = LoginCodeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = telegram_login.submit_code(
            request.user, account, serializer.validated_data["code"]
        )
        return Response({"status": outcome})

    @extend_schema(request=LoginPasswordSerializer, responses=LoginStepSerializer)
    @action(detail=True, methods=["post"], url_path="login/password")
    def login_password(self, request, pk=None):
        account = self.get_object()
        serializer = LoginPasswordSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = telegram_login.submit_password(
            request.user, account, serializer.validated_data["password"]
        )
        return Response({"status": outcome})


class ConnectionCheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class ConnectionTestSerializer(serializers.Serializer):
    imap = ConnectionCheckSerializer()
    smtp = ConnectionCheckSerializer()


class EmailAccountViewSet(ChannelViewSet):
    model = EmailAccount
    serializer_class = EmailAccountSerializer

    @extend_schema(request=None, responses=ConnectionTestSerializer)
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk=None):
        """Log in to IMAP and SMTP with the stored settings; each result in words."""
        return Response(email_smtp.test_connection(self.get_object()))
