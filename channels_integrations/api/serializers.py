from phonenumber_field.serializerfields import PhoneNumberField
from rest_framework import serializers

from accounts.models import User
from accounts.scoping import scoped
from crm.api.base import WriteOnlySecretField

from ..models import EmailAccount, TelegramAccount, WhatsAppNumber
from ..telegram.login import login_step


class StrictPositiveIntegerField(serializers.IntegerField):
    """Only whole numbers: DRF's IntegerField would take 1.0, "1.0" and true."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not (
            (isinstance(data, int)) or (isinstance(data, str) and data.strip().isdigit())
        ):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if value < 1:
            self.fail("invalid")
        return value


class SecretsSerializerMixin:
    """Secrets are write-only; the read side has `<name>_set: true/false` instead."""

    secret_fields: tuple[str, ...] = ()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for name in self.secret_fields:
            data[f"{name}_set"] = bool(getattr(instance, name))
        return data


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


class TelegramAccountSerializer(SecretsSerializerMixin, serializers.ModelSerializer):
    secret_fields = ("api_hash", "session_string")
    phone = PhoneNumberField()
    api_id = StrictPositiveIntegerField(
        max_value=2**31 - 1,
        error_messages={
            "invalid": "api_id must be a positive whole number (from my.telegram.org)."
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
            "status",
            "last_event_at",
            "messages_received",
            "last_error",
            "last_error_at",
            "last_connected_at",
            "last_heartbeat_at",
            "reconnect_attempts",
            "next_attempt_at",
            "login_step",
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

    def validate(self, attrs):
        if self.instance is None and not attrs.get("api_hash"):
            raise serializers.ValidationError({"api_hash": ["This field is required."]})
        return attrs


class EmailAccountSerializer(SecretsSerializerMixin, serializers.ModelSerializer):
    secret_fields = ("password",)
    password = WriteOnlySecretField()
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.none(), required=False)

    class Meta:
        model = EmailAccount
        fields = [
            "id",
            "owner",
            "address",
            "display_name",
            "imap_host",
            "imap_port",
            "imap_ssl",
            "smtp_host",
            "smtp_port",
            "smtp_security",
            "username",
            "password",
            "is_active",
            "poll_interval_seconds",
            "first_sync_days",
            "use_idle",
            "status",
            "last_poll_at",
            "last_success_at",
            "next_poll_at",
            "messages_imported",
            "last_error",
            "last_error_at",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "last_poll_at",
            "last_success_at",
            "next_poll_at",
            "messages_imported",
            "last_error",
            "last_error_at",
            "created_at",
        ]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:
            fields["owner"].queryset = scoped(User, request.user)  # members of my company only
        return fields
