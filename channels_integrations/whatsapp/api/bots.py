"""Bots REST API. Agents read; company admins write (through channels_integrations.services).

    /whatsapp/bots/                              GET list (?number=<id>), POST create
    /whatsapp/bots/{id}/                         GET, PUT, PATCH, DELETE (rules go with it)
    /whatsapp/bots/{bot_pk}/rules/               GET list (by position), POST create (appended)
    /whatsapp/bots/{bot_pk}/rules/{id}/          GET, PUT, PATCH, DELETE
    /whatsapp/bots/{bot_pk}/rules/reorder/       POST {"order": [rule ids]}

Another company's bot or rule is a 404 like a missing one; another company's number in a
body is a 400 naming `number`.
"""

from django.db.models import Count
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import IsCompanyAdminOrReadOnly
from accounts.scoping import get_scoped_or_404, scoped
from crm.api.base import CompanyScopedViewSet
from crm.pagination import CursorPagination

from ...models import Bot, BotRule, WhatsAppNumber
from .. import bots as services


def _numbers_of(user):
    return scoped(WhatsAppNumber, user).exclude(status=WhatsAppNumber.Status.DELETING)


class BotSerializer(serializers.ModelSerializer):
    number = serializers.PrimaryKeyRelatedField(
        queryset=WhatsAppNumber.objects.none(),
        help_text="A WhatsApp number of your company; fixed once the bot exists.",
    )
    rules_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Bot
        fields = ["id", "number", "name", "is_active", "greeting", "rules_count", "created_at"]
        read_only_fields = ["id", "rules_count", "created_at"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:
            fields["number"].queryset = _numbers_of(request.user)  # my company's numbers only
        return fields

    def validate_number(self, number):
        if self.instance is not None and number.pk != self.instance.number_id:
            raise serializers.ValidationError(_("A bot stays on its number; create a new bot."))
        return number


class BotRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = BotRule
        fields = [
            "id",
            "bot",
            "position",
            "match_type",
            "trigger",
            "reply_text",
            "is_active",
        ]
        read_only_fields = ["id", "bot", "position"]
        extra_kwargs = {
            "trigger": {
                "help_text": "keyword: a word or phrase, matched whole and case-insensitively; "
                "regex: a Python regular expression, searched case-insensitively."
            },
            "reply_text": {"max_length": services.TEXT_LIMIT},
        }


class ReorderSerializer(serializers.Serializer):
    order = serializers.ListField(
        child=serializers.IntegerField(), help_text="Every rule id of the bot, in the new order"
    )


class BotPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("name", "id")


class RulePagination(BotPagination):
    ordering = ("position", "id")


NUMBER_FILTER = OpenApiParameter("number", int, description="only the bots of this number")
BOT_PK = OpenApiParameter("bot_pk", int, OpenApiParameter.PATH, description="The bot's id")


@extend_schema_view(list=extend_schema(parameters=[NUMBER_FILTER]))
class BotViewSet(CompanyScopedViewSet):
    model = Bot
    serializer_class = BotSerializer
    pagination_class = BotPagination
    permission_classes = [IsCompanyAdminOrReadOnly]

    def get_queryset(self):
        queryset = (
            super()
            .get_queryset()
            .filter(number__isnull=False)  # the sandbox's bots show on its own page
            .exclude(number__status=WhatsAppNumber.Status.DELETING)
            .annotate(rules_count=Count("rules"))
        )
        if self.action == "list" and "number" in self.request.query_params:
            number = self.request.query_params["number"].strip()
            if not number.isdigit():
                raise serializers.ValidationError({"number": [_("A number id is expected.")]})
            queryset = queryset.filter(number_id=int(number))
        return queryset

    def _fields(self, serializer):
        return {
            name: value
            for name, value in serializer.validated_data.items()
            if name in services.BOT_FIELDS
        }

    def perform_create(self, serializer):
        serializer.instance = services.create_bot(
            self.request.user, serializer.validated_data["number"], **self._fields(serializer)
        )

    def perform_update(self, serializer):
        serializer.instance = services.update_bot(
            self.request.user, serializer.instance, **self._fields(serializer)
        )

    def perform_destroy(self, instance):
        services.delete_bot(self.request.user, instance)


@extend_schema_view(
    list=extend_schema(parameters=[BOT_PK]),
    create=extend_schema(parameters=[BOT_PK]),
    retrieve=extend_schema(parameters=[BOT_PK]),
    update=extend_schema(parameters=[BOT_PK]),
    partial_update=extend_schema(parameters=[BOT_PK]),
    destroy=extend_schema(parameters=[BOT_PK]),
)
class BotRuleViewSet(CompanyScopedViewSet):
    """`/whatsapp/bots/{bot_pk}/rules/`: a bot's rules in the order they are tried."""

    model = BotRule
    serializer_class = BotRuleSerializer
    pagination_class = RulePagination
    permission_classes = [IsCompanyAdminOrReadOnly]

    def bot(self) -> Bot:
        if not hasattr(self, "_bot"):
            self._bot = get_scoped_or_404(
                Bot.objects.filter(number__isnull=False)
                .select_related("number")
                .exclude(number__status=WhatsAppNumber.Status.DELETING),
                self.request.user,
                pk=self.kwargs["bot_pk"],
            )
        return self._bot

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the types
            return BotRule.objects.none()
        return super().get_queryset().filter(bot=self.bot()).select_related("bot__number")

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not getattr(self, "swagger_fake_view", False):
            self.bot()  # another company's (or no) bot: 404 before the body is looked at

    def perform_create(self, serializer):
        serializer.instance = services.create_rule(
            self.request.user, self.bot(), **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.update_rule(
            self.request.user, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.delete_rule(self.request.user, instance)

    @extend_schema(
        summary="Reorder a bot's rules",
        parameters=[BOT_PK],
        request=ReorderSerializer,
        responses=BotRuleSerializer(many=True),
    )
    @action(detail=False, methods=["post"])
    def reorder(self, request, *args, **kwargs):
        payload = ReorderSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        rules = services.reorder_rules(request.user, self.bot(), payload.validated_data["order"])
        return Response(BotRuleSerializer(rules, many=True).data, status=status.HTTP_200_OK)
