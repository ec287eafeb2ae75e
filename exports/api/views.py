"""`/api/v1/exports/`: start an export (202), read its state and progress, download the
archive. Another company's job is a 404; a channel's export is for admins only (403)."""

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from accounts.scoping import scoped

from .. import selectors, services
from ..models import ExportJob
from ..views import download_response
from .serializers import ExportJobSerializer, ExportStartSerializer


class ExportJobViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Exports of a channel source's or a client's conversations (newest first)."""

    serializer_class = ExportJobSerializer

    def get_queryset(self):
        if self.action == "list":
            return selectors.jobs(self.request.user)
        return scoped(ExportJob, self.request.user)

    def perform_content_negotiation(self, request, force=False):
        """The download answers with the file whatever `Accept` says (`application/zip`,
        `application/octet-stream`); its errors in JSON."""
        if getattr(self, "action", None) == "download":
            renderer = self.get_renderers()[0]
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)

    def get_object(self):
        job = super().get_object()
        if not services.may_access(self.request.user, job):
            raise PermissionDenied(_("Only company admins can read channel exports."))
        return job

    @extend_schema(
        request=ExportStartSerializer,
        responses={202: ExportJobSerializer},
        summary="Start an export (an unfinished one of the same subject is returned instead)",
    )
    def create(self, request, *args, **kwargs):
        given = ExportStartSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        job = services.start_export(
            request.user, given.validated_data["kind"], given.validated_data["object_id"]
        )
        return Response(
            ExportJobSerializer(job, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        summary="Download the archive (a ZIP)",
        responses={
            # octet-stream: the binary type API clients (openapi-python-client) generate for
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="Not finished, expired, or not yours"),
        },
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        job = self.get_object()
        try:
            return download_response(job, "application/octet-stream")
        except Http404 as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
