from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts.scoping import get_scoped_or_404
from crm import client_services, services
from crm.api.base import CompanyScopedViewSet
from crm.api.serializers import (
    ClientImportErrorSerializer,
    ClientImportInputSerializer,
    ClientImportResultSerializer,
    ClientMergeInputSerializer,
    ClientMergeSerializer,
    ClientSerializer,
)
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

    @extend_schema(
        summary="Merge a duplicate into this client",
        description=(
            "The duplicate (`other`) is merged into the client in the path, which is kept: its "
            "conversations and deals (with their history) move here, its phone, email and "
            "Telegram identity fill what this client lacks (the others go into the notes), and "
            "it is deleted. The answer is the merge record (a snapshot of the duplicate). "
            "Either client of another company (or missing) is a 404; the same client twice is "
            "a 400 on `other`."
        ),
        request=ClientMergeInputSerializer,
        responses={200: ClientMergeSerializer},
    )
    @action(detail=True, methods=["post"], url_path="merge")
    def merge(self, request, pk=None):
        keep = self.get_object()
        payload = ClientMergeInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        # Another company's client is a 404 like a missing one; the same client twice is the
        # service's 400 on `other`.
        other = get_scoped_or_404(Client, request.user, pk=payload.validated_data["other"])
        record = client_services.merge_clients(request.user, keep, other)
        return Response(ClientMergeSerializer(record).data)

    @extend_schema(
        summary="Import clients from CSV (multipart)",
        description=(
            "`multipart/form-data` with one `file` part: UTF-8 CSV whose header names some of "
            "`name, phone, email, telegram_user_id, telegram_username, notes`. Every line is "
            "checked first (formats, duplicates within the file and with your company's "
            "clients); any bad line means nothing is imported, and the 400 lists every bad line "
            "in `lines` (line number, field, message; line 0 is the file as a whole) and in "
            "`file` as sentences."
        ),
        request={"multipart/form-data": ClientImportInputSerializer},
        responses={
            201: ClientImportResultSerializer,
            400: OpenApiResponse(ClientImportErrorSerializer, description="Bad lines"),
        },
    )
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser])
    def import_csv(self, request):
        payload = ClientImportInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        upload = payload.validated_data["file"]
        try:
            count = client_services.import_clients_csv(
                request.user, upload.read(client_services.IMPORT_MAX_BYTES + 1)
            )
        except client_services.ImportErrors as exc:
            return Response(
                {
                    "file": exc.messages,
                    "lines": [
                        {"line": line, "field": field, "message": message}
                        for line, field, message in exc.lines
                    ],
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response({"imported": count}, status=status.HTTP_201_CREATED)
