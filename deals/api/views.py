"""Deals REST API: pipelines (with their stages, delete preview) and deals (filters, move,
close, history). Reads are tenant-scoped; writes go through deals.services."""

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from crm.api.base import CompanyScopedViewSet

from .. import selectors, services
from ..models import Deal, Pipeline
from .serializers import (
    DealCloseSerializer,
    DealMoveSerializer,
    DealSerializer,
    PipelineDeletePreviewSerializer,
    PipelineSerializer,
    StageChangeSerializer,
)


class PipelineViewSet(CompanyScopedViewSet):
    model = Pipeline
    serializer_class = PipelineSerializer
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.pipelines(self.request.user).prefetch_related("stages")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.create_pipeline(
            self.request.user, data["name"], [stage["name"] for stage in data["stages"]]
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        pipeline = serializer.instance
        stages = data.get("stages")
        if stages is None:
            stages = [{"id": s.pk, "name": s.name} for s in pipeline.stages.all()]
        serializer.instance = services.update_pipeline(
            self.request.user,
            pipeline,
            data.get("name", pipeline.name),
            [(stage.get("id"), stage["name"]) for stage in stages],
        )
        serializer.instance = Pipeline.objects.prefetch_related("stages").get(pk=pipeline.pk)

    def perform_destroy(self, instance):
        services.delete_pipeline(self.request.user, instance)

    @extend_schema(responses=PipelineDeletePreviewSerializer)
    @action(detail=True, methods=["get"], url_path="delete-preview")
    def delete_preview(self, request, pk=None):
        """What deleting this pipeline removes with it."""
        return Response(services.pipeline_delete_preview(self.get_object()))


FILTER_PARAMETERS = [
    OpenApiParameter("pipeline", int),
    OpenApiParameter("stage", int),
    OpenApiParameter("owner", int),
    OpenApiParameter("client", int),
    OpenApiParameter("status", str, enum=Deal.Status.values),
    OpenApiParameter("amount_min", str, description="decimal"),
    OpenApiParameter("amount_max", str, description="decimal"),
    OpenApiParameter("created_from", str, description="YYYY-MM-DD"),
    OpenApiParameter("created_to", str, description="YYYY-MM-DD"),
    OpenApiParameter("q", str, description="title or client name contains"),
]

RELATIONS = {
    "pipeline_id": "pipeline",
    "stage_id": "stage",
    "client_id": "client",
    "owner_id": "owner",
    "conversation_id": "conversation",
}


def _service_fields(data: dict) -> dict:
    return {RELATIONS.get(key, key): value for key, value in data.items()}


class DealViewSet(CompanyScopedViewSet):
    model = Deal
    serializer_class = DealSerializer

    def get_queryset(self):
        if self.action != "list":
            return selectors.deals(self.request.user)
        deal_filter, errors = selectors.parse_filter(self.request.query_params)
        if errors:
            raise ValidationError(errors)
        return selectors.filtered_deals(self.request.user, deal_filter)

    @extend_schema(parameters=FILTER_PARAMETERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = services.create_deal(
            self.request.user, **_service_fields(serializer.validated_data)
        )

    def perform_update(self, serializer):
        fields = _service_fields(serializer.validated_data)
        deal = serializer.instance
        stage = fields.pop("stage", None)
        pipeline = fields.pop("pipeline", None)
        if pipeline not in (None, deal.pipeline_id):
            raise ValidationError(
                {"pipeline": [_("A deal stays in its pipeline; create a new deal instead.")]}
            )
        deal = services.update_deal(self.request.user, deal, **fields)
        if stage is not None:
            deal = services.move_deal(self.request.user, deal, stage)
        serializer.instance = deal

    def perform_destroy(self, instance):
        services.delete_deal(self.request.user, instance)

    @extend_schema(request=DealMoveSerializer, responses=DealSerializer)
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        """Into another stage of its pipeline; the step is kept in the history."""
        deal = self.get_object()
        body = DealMoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        deal = services.move_deal(request.user, deal, body.validated_data["stage"])
        return Response(DealSerializer(deal).data)

    @extend_schema(request=DealCloseSerializer, responses=DealSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        """Won, lost (a reason is required) or open again."""
        deal = self.get_object()
        body = DealCloseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        deal = services.close_deal(
            request.user, deal, body.validated_data["status"], body.validated_data["lost_reason"]
        )
        return Response(DealSerializer(deal).data)

    @extend_schema(responses=StageChangeSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def history(self, request, pk=None):
        """Every step: created, moved (who, when, from → to), won, lost, reopened."""
        deal = self.get_object()
        return Response(StageChangeSerializer(selectors.history(deal), many=True).data)
