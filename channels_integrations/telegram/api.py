"""/telegram/accounts/: accounts, and logging one in from Switchboard."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from crm.api.base import WriteOnlySecretField
from crm.api.status import StatusLabelMixin

from .. import fleet
from ..api.serializers import SecretsSerializerMixin, StrictPositiveIntegerField
from ..api.views import ChannelViewSet
from ..models import TelegramAccount
from . import login as telegram_login
from .login import login_step


class TelegramAccountSerializer(
    StatusLabelMixin, SecretsSerializerMixin, serializers.ModelSerializer
):
    secret_fields = ("api_hash", "session_string")
    phone = PhoneNumberField()
    api_id = StrictPositiveIntegerField(
        max_value=2**31 - 1,
        error_messages={
            "invalid": _("api_id must be a positive whole number (from my.telegram.org).")
        },
    )
    api_hash = WriteOnlySecretField(max_length=32)
    session_string = WriteOnlySecretField()

    class Meta:
        model = TelegramAccount
        fields = [
            "id",
            "name",
            "phone",
            "api_id",
            "api_hash",
            "session_string",
            "is_active",
            "team",
            "distribution",
            "status",
            "status_label",
            "last_event_at",
            "messages_received",
            "last_error",
            "last_error_at",
            "last_connected_at",
            "last_heartbeat_at",
            "reconnect_attempts",
            "next_attempt_at",
            "login_step",
            "live_status",
            "waiting_for_capacity",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "last_event_at",
            "messages_received",
            "last_error",
            "last_error_at",
            "last_connected_at",
            "last_heartbeat_at",
            "reconnect_attempts",
            "next_attempt_at",
            "created_at",
        ]

    login_step = serializers.SerializerMethodField(
        help_text='"code" or "password" while a log-in waits for that step, else null'
    )

    def get_login_step(self, account) -> str | None:
        return login_step(account)

    live_status = serializers.SerializerMethodField(
        help_text='what the listener is doing now: the status, "reconnecting" when the '
        'row says connected but no live host holds it, or "waiting" (for capacity)'
    )
    waiting_for_capacity = serializers.SerializerMethodField(
        help_text="no connection host has room for this account now"
    )

    def get_live_status(self, account) -> str:
        return fleet.row_state(account)[0]

    def get_waiting_for_capacity(self, account) -> bool:
        return fleet.is_waiting("telegram:account", account.pk)

    def validate(self, attrs):
        if self.instance is None and not attrs.get("api_hash"):
            raise serializers.ValidationError({"api_hash": [_("This field is required.")]})
        return attrs


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
