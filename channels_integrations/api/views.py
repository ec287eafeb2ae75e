"""The API base every channel's account or number endpoint shares."""

from accounts.permissions import IsCompanyAdminOrReadOnly
from crm.api.base import CompanyScopedViewSet

from .. import services


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
