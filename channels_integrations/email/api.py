"""/email/accounts/: mailboxes, and testing their IMAP and SMTP settings."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import User
from accounts.scoping import scoped
from crm.api.base import WriteOnlySecretField
from crm.api.status import StatusLabelMixin

from .. import fleet
from ..api.serializers import SecretsSerializerMixin
from ..api.views import ChannelViewSet
from ..models import EmailAccount
from . import accounts
from . import smtp as email_smtp

# Read-only: what the poll reports. What admins edit is the settings page's list
# (accounts.KIND.editable), so the API and the page never disagree.
REPORTED = [
    "status",
    "status_label",
    "last_poll_at",
    "last_success_at",
    "next_poll_at",
    "messages_imported",
    "last_error",
    "last_error_at",
    "created_at",
]


class EmailAccountSerializer(StatusLabelMixin, SecretsSerializerMixin, serializers.ModelSerializer):
    secret_fields = ("password",)
    password = WriteOnlySecretField()
    owner = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.none(), required=False, allow_null=True
    )

    # The same two fields as Telegram accounts' and WhatsApp sessions' (issue #21).
    live_status = serializers.SerializerMethodField(
        help_text='the status to show: the polling status, or "waiting" while IMAP IDLE is '
        "waiting for a connection host with room"
    )
    waiting_for_capacity = serializers.SerializerMethodField(
        help_text="no connection host has room for this mailbox's IDLE connection now"
    )

    class Meta:
        model = EmailAccount
        fields = ["id", *accounts.KIND.editable, *REPORTED, "live_status", "waiting_for_capacity"]
        read_only_fields = ["id", *REPORTED]

    def get_live_status(self, account) -> str:
        return fleet.row_state(account)[0]

    def get_waiting_for_capacity(self, account) -> bool:
        return fleet.row_state(account)[0] == "waiting"

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:
            fields["owner"].queryset = scoped(User, request.user)  # members of my company only
        return fields


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
