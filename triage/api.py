"""REST API: labels, saved views (with live counts), labels on conversations and clients,
conversation states and bulk actions. Reads through triage.selectors (tenant-scoped; another
company's id is a 404), writes through services."""

from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.scoping import scoped
from crm.pagination import CursorPagination

from . import selectors, services
from .filters import VIEW_FILTERS
from .models import Label, SavedView


class LabelPagination(CursorPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = ("id",)


class LabelSerializer(serializers.ModelSerializer):
    color = serializers.ChoiceField(choices=Label.Color.choices, default=Label.Color.BLUE)

    class Meta:
        model = Label
        fields = ["id", "name", "color", "created_at"]
        read_only_fields = ["id", "created_at"]


class LabelUsageSerializer(serializers.Serializer):
    conversations = serializers.IntegerField()
    clients = serializers.IntegerField()


class LabelViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The company's labels. Anyone reads them; admins create, rename, recolour and delete.
    Deleting takes the label off every conversation and client (`usage` tells how many)."""

    queryset = Label.objects.none()  # for the schema; get_queryset scopes the real reads
    serializer_class = LabelSerializer
    pagination_class = LabelPagination

    def get_queryset(self):
        return selectors.company_labels(self.request.user)

    def get_object(self):
        return selectors.get_label(self.request.user, self.kwargs["pk"])

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.create_label(self.request.user, data["name"], data["color"])

    def perform_update(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.update_label(
            self.request.user, serializer.instance, name=data.get("name"), color=data.get("color")
        )

    def perform_destroy(self, instance):
        services.delete_label(self.request.user, instance)

    @extend_schema(responses=LabelUsageSerializer)
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        return Response(selectors.label_usage(self.get_object()))


class ViewFiltersSerializer(serializers.Serializer):
    status = serializers.CharField(
        required=False, help_text="open, pending, snoozed, closed or all"
    )
    label = serializers.IntegerField(required=False, help_text="a label id of your company")
    assigned = serializers.ChoiceField(choices=["mine", "unassigned"], required=False)
    platform = serializers.CharField(required=False)
    unread = serializers.BooleanField(required=False)


class SavedViewSerializer(serializers.ModelSerializer):
    filters = ViewFiltersSerializer(required=False)
    owner_id = serializers.IntegerField(read_only=True)
    count = serializers.SerializerMethodField(
        help_text="conversations matching it now (in the list; null elsewhere)"
    )

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_count(self, view) -> int | None:
        return getattr(view, "count", None)

    class Meta:
        model = SavedView
        fields = ["id", "name", "shared", "filters", "owner_id", "count", "created_at"]
        read_only_fields = ["id", "owner_id", "count", "created_at"]


class SavedViewPagination(CursorPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = ("id",)


class SavedViewViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Saved inbox views: your own and the company's shared ones (someone else's personal
    view is a 404). The list carries each view's `count` (one aggregate query)."""

    queryset = SavedView.objects.none()  # for the schema; get_queryset scopes the real reads
    serializer_class = SavedViewSerializer
    pagination_class = SavedViewPagination

    def get_queryset(self):
        return selectors.visible_views(self.request.user)

    def get_object(self):
        return selectors.get_view(self.request.user, self.kwargs["pk"])

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        views = list(page)
        counts = {view.pk: view.count for view in selectors.views_with_counts(request.user)}
        for view in views:
            view.count = counts.get(view.pk, 0)
        return self.get_paginated_response(self.get_serializer(views, many=True).data)

    @staticmethod
    def _raw_filters(serializer) -> dict | None:
        filters = (
            serializer.initial_data.get("filters") if hasattr(serializer, "initial_data") else None
        )
        if filters is None:
            return None
        if not isinstance(filters, dict):
            raise serializers.ValidationError({"filters": [_("Must be an object.")]})
        return {key: filters.get(key) for key in VIEW_FILTERS if key in filters}

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.create_view(
            self.request.user,
            data["name"],
            self._raw_filters(serializer) or {},
            shared=data.get("shared", False),
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.update_view(
            self.request.user,
            serializer.instance,
            name=data.get("name"),
            shared=data.get("shared"),
            filters=self._raw_filters(serializer),
        )

    def perform_destroy(self, instance):
        services.delete_view(self.request.user, instance)


# ---------------------------------------------------------------- on conversations/clients


class SetLabelsSerializer(serializers.Serializer):
    labels = serializers.ListField(
        child=serializers.IntegerField(), allow_empty=True, help_text="label ids (replaces all)"
    )


class LabelIdsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label_ids = serializers.ListField(child=serializers.IntegerField())


def company_labels_or_error(user, ids) -> list[Label]:
    ids = list(dict.fromkeys(ids))
    labels = selectors.labels_by_ids(user, ids)
    if len(labels) != len(ids):
        raise serializers.ValidationError({"labels": [_("Choose your company's labels.")]})
    return labels


class StatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["open", "pending", "snoozed", "closed"])
    snoozed_until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="snoozed only: when it wakes (omit or null: when the customer next writes)",
    )


class BulkSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(),
        min_length=1,
        max_length=services.BULK_MAX,
        required=False,
        help_text="the conversations (unless `all`)",
    )
    all = serializers.BooleanField(
        default=False,
        help_text="every conversation the list would show for `filters`, on every page "
        "(at most 1,000; more is a 400 and nothing is changed)",
    )
    filters = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text="with `all`: the list's filters (`status` — open by default —, `platform`, "
        "`label`, `assignee`, `unread`, `q`)",
    )
    action = serializers.ChoiceField(choices=services.BULK_ACTIONS)
    assignee = serializers.IntegerField(
        required=False, allow_null=True, help_text="assign: a member id, or null to unassign"
    )
    label = serializers.IntegerField(required=False, help_text="label/unlabel: a label id")


class BulkFailureSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    error = serializers.CharField()


class BulkResultSerializer(serializers.Serializer):
    done = serializers.ListField(child=serializers.IntegerField())
    failed = BulkFailureSerializer(many=True)


def bulk_from_request(user, data, matching=None) -> services.BulkResult:
    """`matching(filters)`: the conversations the list shows for those filters (for `all`)."""
    payload = BulkSerializer(data=data)
    payload.is_valid(raise_exception=True)
    data = payload.validated_data
    if not data["all"] and not data.get("ids"):
        raise serializers.ValidationError({"ids": [_("Select at least one conversation.")]})
    assignee = label = None
    if data["action"] == "assign" and data.get("assignee") is not None:
        assignee = (
            scoped(get_user_model(), user).filter(pk=data["assignee"], is_active=True).first()
        )
        if assignee is None:
            raise serializers.ValidationError({"assignee": [_("Choose a member of your company.")]})
    if data["action"] in ("label", "unlabel"):
        found = selectors.labels_by_ids(user, [data.get("label", "")])
        if not found:
            raise serializers.ValidationError(
                {"label": [_("Choose one of your company's labels.")]}
            )
        label = found[0]
    if data["all"] and matching is not None:
        return services.bulk_update_matching(
            user,
            matching(data.get("filters") or {}),
            data["action"],
            assignee=assignee,
            label=label,
        )
    return services.bulk_update(user, data["ids"], data["action"], assignee=assignee, label=label)


BULK_SCHEMA = extend_schema(
    request=BulkSerializer,
    responses={200: BulkResultSerializer, 400: OpenApiResponse(description="a field is wrong")},
)
LABELS_SCHEMA = extend_schema(request=SetLabelsSerializer, responses=LabelIdsSerializer)
HTTP_200 = status.HTTP_200_OK
