"""Broadcasts REST API: list/create/retrieve (with counts by outcome), cancel, and the
recipients of one broadcast (paginated). Agents read; company admins create and cancel."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import IsCompanyAdminOrReadOnly
from accounts.scoping import scoped
from crm import idempotency
from crm.api.base import nested_errors
from crm.api.status import StatusLabelMixin
from crm.pagination import CursorPagination

from ...models import Broadcast, BroadcastRecipient, WhatsAppNumber
from .. import broadcasts as services


class RecipientPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("id",)


class BroadcastCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField(source="total_count")
    sent = serializers.IntegerField(source="sent_count", help_text="sent, delivered or read")
    failed = serializers.IntegerField(source="failed_count")
    pending = serializers.IntegerField(source="pending_count", help_text="not sent yet")
    unknown = serializers.IntegerField(
        source="unknown_count",
        help_text="interrupted mid-send: may have arrived; never retried automatically",
    )
    cancelled = serializers.IntegerField(source="cancelled_count")


class BroadcastSerializer(StatusLabelMixin, serializers.ModelSerializer):
    # Never null here: this API lists numbers' broadcasts (the sandbox's stay on its page).
    number = serializers.PrimaryKeyRelatedField(read_only=True)
    number_phone = serializers.CharField(source="number.phone", read_only=True)
    counts = BroadcastCountsSerializer(source="*", read_only=True)
    paused = serializers.SerializerMethodField(
        help_text="true while the number is deactivated: nothing is sent until it is reactivated"
    )

    class Meta:
        model = Broadcast
        fields = [
            "id",
            "number",
            "number_phone",
            "name",
            "text",
            "template_name",
            "template_language",
            "template_variables",
            "status",
            "status_label",
            "paused",
            "scheduled_at",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "counts",
        ]
        read_only_fields = fields

    def get_paused(self, broadcast) -> bool:
        return broadcast.status in services.ACTIVE_STATUSES and not broadcast.number.is_active


class TemplateVariableSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=services.VARIABLE_KINDS,
        help_text="`text`: the same text for everyone; `client_name`: each recipient's client's "
        "name",
    )
    text = serializers.CharField(
        allow_blank=True,
        max_length=1024,
        help_text="the text (for `client_name`: used when a recipient has no client name)",
    )


class BroadcastTemplateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=512)
    language = serializers.CharField(max_length=20)
    variables = serializers.DictField(
        child=serializers.ListField(child=TemplateVariableSerializer()),
        required=False,
        default=dict,
        help_text='per component, {{1}}, {{2}} ... in order: {"body": [{"kind": "client_name", '
        '"text": "friend"}]}',
    )


class BroadcastCreateSerializer(serializers.Serializer):
    number = serializers.PrimaryKeyRelatedField(queryset=WhatsAppNumber.objects.none())
    name = serializers.CharField(required=False, allow_blank=True, default="")
    text = serializers.CharField(
        allow_blank=True,
        trim_whitespace=False,
        required=False,
        default="",
        help_text="free text; from a Cloud number only when every recipient wrote within 24 h. "
        "Ignored with a template",
    )
    template = BroadcastTemplateSerializer(
        required=False,
        allow_null=True,
        default=None,
        help_text="Cloud numbers: an approved template of the number, sent to each recipient",
    )
    all_clients = serializers.BooleanField(
        required=False, default=False, help_text="every client of the company with a phone"
    )
    clients = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        help_text="ids of chosen clients",
    )
    phones = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="pasted phone numbers, one per line (international format); invalid lines "
        "are listed back by line number and nothing is created",
    )
    scheduled_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="omit or null: send now"
    )

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:  # numbers of my company only (others: "does not exist")
            fields["number"].queryset = scoped(WhatsAppNumber, request.user).exclude(
                status=WhatsAppNumber.Status.DELETING
            )
        return fields


def _create_or_400(actor, **fields):
    """create_broadcast, its "template.variables" errors nested under "template"."""
    try:
        return services.create_broadcast(actor, **fields)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(nested_errors(exc)) from None


class BroadcastRecipientSerializer(StatusLabelMixin, serializers.ModelSerializer):
    class Meta:
        model = BroadcastRecipient
        fields = [
            "id",
            "phone",
            "client",
            "status",
            "status_label",
            "provider_message_id",
            "error",
            "sent_at",
            "updated_at",
        ]
        read_only_fields = fields


class BroadcastViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    permission_classes = [IsCompanyAdminOrReadOnly]
    serializer_class = BroadcastSerializer

    def get_queryset(self):
        queryset = (
            scoped(Broadcast, self.request.user)
            .filter(number__isnull=False)  # the sandbox's show on its own page
            .exclude(number__status=WhatsAppNumber.Status.DELETING)
            .select_related("number")
        )
        if self.action in ("list", "retrieve"):
            queryset = services.with_counts(queryset)
        return queryset

    def _respond(self, broadcast, code=status.HTTP_200_OK):
        fresh = services.with_counts(
            Broadcast.objects.filter(pk=broadcast.pk).select_related("number")
        ).get()
        return Response(BroadcastSerializer(fresh).data, status=code)

    @extend_schema(
        request=BroadcastCreateSerializer,
        parameters=[idempotency.parameter()],
        responses={201: BroadcastSerializer},
    )
    def create(self, request, *args, **kwargs):
        return idempotency.run(request, lambda: self._create(request))

    def _create(self, request):
        payload = BroadcastCreateSerializer(
            data=request.data, context=self.get_serializer_context()
        )
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        broadcast = _create_or_400(
            request.user,
            number=data["number"],
            name=data["name"],
            text=data["text"],
            all_clients=data["all_clients"],
            client_ids=data["clients"],
            phones=data["phones"],
            scheduled_at=data["scheduled_at"],
            template=data["template"],
        )
        return self._respond(broadcast, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=BroadcastSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._respond(services.cancel_broadcast(request.user, self.get_object()))

    @extend_schema(
        responses=BroadcastRecipientSerializer(many=True),
        parameters=[
            OpenApiParameter(
                "status", str, enum=BroadcastRecipient.Status.values, description="only these"
            )
        ],
    )
    @action(
        detail=True,
        methods=["get"],
        pagination_class=RecipientPagination,
        serializer_class=BroadcastRecipientSerializer,
    )
    def recipients(self, request, pk=None):
        broadcast = self.get_object()
        queryset = BroadcastRecipient.objects.filter(broadcast=broadcast)
        wanted = request.query_params.get("status", "")
        if wanted in BroadcastRecipient.Status.values:
            queryset = queryset.filter(status=wanted)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(BroadcastRecipientSerializer(page, many=True).data)
