from crm import services
from crm.api.base import CompanyScopedViewSet
from crm.api.serializers import ClientSerializer
from crm.models import Client


class ClientViewSet(CompanyScopedViewSet):
    model = Client
    serializer_class = ClientSerializer

    def perform_create(self, serializer):
        serializer.instance = services.create_client(self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_client(
            self.request.user, serializer.instance, **serializer.validated_data
        )
