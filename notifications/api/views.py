"""`/notifications/`: the user's own notifications, newest first (`?unread=1` only unread);
`{id}/read/` and `read-all/` mark them read; `preferences/` reads and changes which kinds the
user is told about and whether a sound plays."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from crm.api.base import nested_errors
from crm.pagination import CursorPagination

from .. import selectors, services
from ..models import UNREAD_COUNTED, Kind, Notification


class NotificationPagination(CursorPagination):
    page_size = 30
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = ("-created_at", "-id")


class NotificationSerializer(serializers.ModelSerializer):
    title = serializers.CharField(read_only=True, help_text="The sentence shown to the user")
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "url", "conversation", "read", "created_at"]
        read_only_fields = fields

    def get_read(self, notification) -> bool:
        return notification.read_at is not None


class ReadAllSerializer(serializers.Serializer):
    marked = serializers.IntegerField()
    unread_count = serializers.IntegerField(
        help_text=f"Unread notifications left, counted up to {UNREAD_COUNTED} (that many or more)"
    )


class PreferenceSerializer(serializers.Serializer):
    muted_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=Kind.choices),
        required=False,
        help_text="The kinds the user is not told about",
    )
    sound = serializers.BooleanField(required=False, help_text="Play a sound on a new one")
    kinds = serializers.SerializerMethodField(help_text="Every kind, for a settings form")

    def get_kinds(self, preference) -> list[str]:
        return list(Kind.values)


class NotificationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = NotificationSerializer
    pagination_class = NotificationPagination

    def get_queryset(self):
        rows = selectors.notifications_of(self.request.user)
        if self.action == "list" and self.request.query_params.get("unread") in ("1", "true"):
            rows = rows.filter(read_at=None)
        return rows

    def get_object(self):
        return selectors.get_notification(self.request.user, self.kwargs["pk"])

    @extend_schema(parameters=[OpenApiParameter("unread", bool, description="Only unread ones")])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses=NotificationSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        notification = services.mark_read(request.user, self.get_object())
        return Response(NotificationSerializer(notification).data)

    @extend_schema(request=None, responses=ReadAllSerializer)
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        marked = services.mark_all_read(request.user)
        return Response({"marked": marked, "unread_count": selectors.unread_count(request.user)})

    @extend_schema(request=None, responses=PreferenceSerializer)
    @action(detail=False, methods=["get"], url_path="preferences")
    def preferences(self, request):
        return Response(PreferenceSerializer(selectors.preferences_of(request.user)).data)

    @extend_schema(request=PreferenceSerializer, responses=PreferenceSerializer)
    @preferences.mapping.patch
    def change_preferences(self, request):
        payload = PreferenceSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            preference = services.update_preferences(request.user, **payload.validated_data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(nested_errors(exc)) from None
        return Response(PreferenceSerializer(preference).data)
