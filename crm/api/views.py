from rest_framework.decorators import action
from rest_framework.response import Response

from crm import services
from crm.api.base import CompanyScopedViewSet
from crm.api.serializers import ClientSerializer
from crm.models import Client
from triage import api as triage_api
from triage import services as triage_services


class ClientViewSet(CompanyScopedViewSet):
    model = Client
    serializer_class = ClientSerializer

    def perform_create(self, serializer):
        serializer.instance = services.create_client(self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_client(
            self.request.user, serializer.instance, **serializer.validated_data
        )

    @triage_api.LABELS_SCHEMA
    @action(detail=True, methods=["post"], url_path="labels")
    def set_labels(self, request, pk=None):
        """Replace the client's labels (`labels`: ids of your company's labels)."""
        client = self.get_object()
        payload = triage_api.SetLabelsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        labels = triage_api.company_labels_or_error(request.user, payload.validated_data["labels"])
        ids = triage_services.set_client_labels(request.user, client, labels)
        return Response({"id": client.pk, "label_ids": ids})
