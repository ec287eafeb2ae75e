"""/meta/pages/ (Messenger) and /meta/instagram-accounts/: agents read, company admins manage;
secrets write-only (`<name>_set` says whether one is stored); `test-connection/` asks Graph
and says what is wrong; `deletion-preview/` counts what a delete takes."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from crm.api.base import WriteOnlySecretField
from crm.api.status import StatusLabelMixin

from ..api.serializers import SecretsSerializerMixin
from ..api.views import ChannelViewSet
from . import accounts
from .models import InstagramAccount, MessengerPage

SECRETS = ("page_access_token", "app_secret", "verify_token")
REPORTED = ["webhook_url", "status", "status_label", "last_error", "last_event_at", "created_at"]
READ_ONLY = ["id", "uuid", *REPORTED]
# What admins edit is the settings page's list (accounts.SHARED); then what we report.
FIELDS = ["id", "uuid", *accounts.SHARED, *REPORTED]


class MetaSourceSerializer(StatusLabelMixin, SecretsSerializerMixin, serializers.ModelSerializer):
    secret_fields = SECRETS
    page_access_token = WriteOnlySecretField()
    app_secret = WriteOnlySecretField()
    verify_token = WriteOnlySecretField()
    status = serializers.CharField(
        read_only=True, help_text='"new" (not tested yet), "ok" or "error" (see last_error)'
    )
    webhook_url = serializers.SerializerMethodField(
        help_text="Give Meta this callback URL (with the verify token) in the app's webhooks."
    )

    def get_webhook_url(self, account) -> str:
        path = reverse("meta-webhook", args=[account.uuid])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def validate(self, attrs):
        if self.instance is None:
            missing = [name for name in SECRETS if not attrs.get(name)]
            if missing:
                raise serializers.ValidationError(
                    {name: ["This field is required."] for name in missing}
                )
        return attrs


class MessengerPageSerializer(MetaSourceSerializer):
    class Meta:
        model = MessengerPage
        fields = FIELDS
        read_only_fields = READ_ONLY


class InstagramAccountSerializer(MetaSourceSerializer):
    class Meta:
        model = InstagramAccount
        fields = [*FIELDS, "ig_user_id", "username"]
        read_only_fields = [*READ_ONLY, "username"]


class MetaConnectionTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class MetaDeletionPreviewSerializer(serializers.Serializer):
    conversations = serializers.IntegerField()
    messages = serializers.IntegerField()
    total = serializers.IntegerField(help_text="every row that goes, the account included")
    irreversible = serializers.BooleanField()


class MetaSourceViewSet(ChannelViewSet):
    @extend_schema(request=None, responses=MetaConnectionTestSerializer)
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk=None):
        """Ask Graph with the stored token: GET /me (and the Instagram account); in words."""
        return Response(accounts.test_connection(request.user, self.get_object()))

    @extend_schema(responses=MetaDeletionPreviewSerializer)
    @action(detail=True, methods=["get"], url_path="deletion-preview")
    def deletion_preview(self, request, pk=None):
        return Response(dict(accounts.deletion_preview(self.get_object()), irreversible=True))


class MessengerPageViewSet(MetaSourceViewSet):
    model = MessengerPage
    serializer_class = MessengerPageSerializer


class InstagramAccountViewSet(MetaSourceViewSet):
    model = InstagramAccount
    serializer_class = InstagramAccountSerializer


# Registered on /api/v1/ by crm.api.urls (every channel folder's `api.ROUTES`).
ROUTES = (
    ("meta/pages", MessengerPageViewSet, "meta-page"),
    ("meta/instagram-accounts", InstagramAccountViewSet, "meta-instagram-account"),
)
