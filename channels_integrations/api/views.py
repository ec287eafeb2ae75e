from accounts.permissions import IsCompanyAdminOrReadOnly
from crm.api.base import CompanyScopedViewSet

from .. import services
from ..models import EmailAccount, TelegramAccount, WhatsAppNumber
from .serializers import EmailAccountSerializer, TelegramAccountSerializer, WhatsAppNumberSerializer


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


class WhatsAppNumberViewSet(ChannelViewSet):
    model = WhatsAppNumber
    serializer_class = WhatsAppNumberSerializer
    # Deleting a number (with its preview and background path) comes with the numbers issue.
    http_method_names = ["get", "post", "patch", "put", "head", "options"]

    def get_queryset(self):
        return super().get_queryset().exclude(status=WhatsAppNumber.Status.DELETING)


class TelegramAccountViewSet(ChannelViewSet):
    model = TelegramAccount
    serializer_class = TelegramAccountSerializer


class EmailAccountViewSet(ChannelViewSet):
    model = EmailAccount
    serializer_class = EmailAccountSerializer
