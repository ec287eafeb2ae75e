"""Canned replies: CRUD (company-wide ones by admins, personal ones by their owner), and the
text filled in for a conversation (`render`, or `?conversation=` on the list)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.scoping import get_scoped_or_404
from crm.api.base import nested_errors
from crm.pagination import CursorPagination
from messaging.selectors import conversation_with_client

from . import rendering, selectors, services
from .models import CannedReply


class CannedReplySerializer(serializers.ModelSerializer):
    personal = serializers.BooleanField(
        source="is_personal",
        default=True,
        help_text="true: only you see it; false: the whole company's (company admins only). "
        "Set on create; cannot be changed.",
    )
    rendered = serializers.SerializerMethodField(
        help_text="The text filled in for `?conversation=` (null without it)."
    )

    class Meta:
        model = CannedReply
        fields = ["id", "title", "shortcut", "body", "personal", "rendered", "updated_at"]
        read_only_fields = ["id", "rendered", "updated_at"]
        extra_kwargs = {
            "body": {"help_text": "Plain text with variables: " + rendering.known_variables()},
            "title": {"validators": []},
            "shortcut": {"validators": []},
        }

    def get_rendered(self, reply) -> str | None:
        conversation = self.context.get("conversation")
        if conversation is None:
            return None
        request = self.context["request"]
        return rendering.render(
            reply.body, company=request.user.company, agent=request.user, conversation=conversation
        )


class RenderInputSerializer(serializers.Serializer):
    conversation = serializers.IntegerField(help_text="the conversation the reply goes into")


class RenderedSerializer(serializers.Serializer):
    body = serializers.CharField()


def _conversation(user, value):
    if value in (None, ""):
        return None
    if not str(value).isdigit():
        raise ValidationError({"conversation": [_("Must be a conversation id.")]})
    return get_scoped_or_404(conversation_with_client(), user, pk=int(value))


class CannedReplyPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("shortcut", "id")


class CannedReplyViewSet(viewsets.ModelViewSet):
    queryset = CannedReply.objects.none()  # the schema's types; reads use get_queryset
    serializer_class = CannedReplySerializer
    pagination_class = CannedReplyPagination

    def get_queryset(self):
        return selectors.visible_replies(self.request.user, self.request.query_params.get("q", ""))

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.action == "list":
            user = self.request.user
            context["conversation"] = _conversation(
                user, self.request.query_params.get("conversation")
            )
        return context

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="shortcut or title contains it"),
            OpenApiParameter(
                "conversation", int, description="fill `rendered` for this conversation"
            ),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def _call(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except DjangoValidationError as exc:
            raise ValidationError(nested_errors(exc)) from None

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        reply = self._call(
            services.create_canned_reply,
            request.user,
            title=data["title"],
            shortcut=data["shortcut"],
            body=data["body"],
            personal=data.get("is_personal", True),
        )
        return Response(self.get_serializer(reply).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        reply = self.get_object()
        partial = kwargs.get("partial", False)
        serializer = self.get_serializer(reply, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        changes = {k: v for k, v in serializer.validated_data.items() if k in services.FIELDS}
        reply = self._call(services.update_canned_reply, request.user, reply, **changes)
        return Response(self.get_serializer(reply).data)

    def destroy(self, request, *args, **kwargs):
        services.delete_canned_reply(request.user, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=RenderInputSerializer, responses=RenderedSerializer)
    @action(detail=True, methods=["post"])
    def render(self, request, pk=None):
        reply = self.get_object()
        serializer = RenderInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = _conversation(request.user, serializer.validated_data["conversation"])
        body = rendering.render(
            reply.body, company=request.user.company, agent=request.user, conversation=conversation
        )
        return Response({"body": body})
