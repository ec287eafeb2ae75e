"""Team chat REST API.

    /chats/                                          GET list, POST create
    /chats/{id}/                                     GET detail (with delete counts), DELETE
    /chats/{id}/leave/                               POST
    /chats/{chat_pk}/messages/                       GET list (newest first), POST send
    /chats/{chat_pk}/messages/{id}/                  GET, PATCH (edit; author only)
    /chats/{chat_pk}/messages/{id}/reactions/        POST {"emoji"} (idempotent)
    /chats/{chat_pk}/messages/{id}/reactions/{emoji}/  DELETE (idempotent)

Another company's chat is a 404 like a missing one; a chat of the company the caller is not in
is a 403. Reads go through messaging.selectors, writes through messaging.services (which
publish the realtime events). Responses have the same shapes as the events' data.
"""

import logging

from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from accounts.permissions import IsCompanyMember
from crm import idempotency
from messaging import selectors, services
from messaging.models import ChatMessage, TeamChat
from messaging.payloads import chat_message_payload, chat_payload, reaction_event_payload

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- idempotency

IDEMPOTENCY_HEADER = idempotency.HEADER
IDEMPOTENCY_PARAMETER = idempotency.parameter(required=True)


# ---------------------------------------------------------------- serializers


class ChatPersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ChatSerializer(serializers.Serializer):
    """A chat; the same shape as the data of `chat.created` and `chat.updated`."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    created_by_id = serializers.IntegerField(read_only=True, allow_null=True)
    members = ChatPersonSerializer(many=True, read_only=True)
    member_count = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(
        read_only=True, help_text="Last activity: a message, or someone leaving"
    )

    def to_representation(self, chat):
        return chat_payload(chat, [membership.user for membership in chat.memberships.all()])


class ChatCountsSerializer(serializers.Serializer):
    members = serializers.IntegerField()
    messages = serializers.IntegerField()
    reactions = serializers.IntegerField()


class ChatDetailSerializer(ChatSerializer):
    counts = ChatCountsSerializer(
        read_only=True, help_text="What a delete of this chat removes with it"
    )


class ChatCreateSerializer(serializers.Serializer):
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Optional: without one, the chat is named after its members",
    )
    members = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        help_text="User ids of people of your company; you are always a member",
    )


class ChatDeletedSerializer(serializers.Serializer):
    """The answer to a delete; the same as the data of the `chat.deleted` event."""

    id = serializers.IntegerField()
    deleted_by = serializers.IntegerField()


class ReactionSummarySerializer(serializers.Serializer):
    emoji = serializers.CharField()
    count = serializers.IntegerField()
    user_ids = serializers.ListField(child=serializers.IntegerField())
    names = serializers.ListField(child=serializers.CharField())


class ChatMessageSerializer(serializers.Serializer):
    """A chat message; the same shape as the data of `chat.message.created` / `.edited`."""

    id = serializers.IntegerField(read_only=True)
    chat_id = serializers.IntegerField(read_only=True)
    author = ChatPersonSerializer(read_only=True, allow_null=True)
    body = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    edited_at = serializers.DateTimeField(read_only=True, allow_null=True)
    reactions = ReactionSummarySerializer(many=True, read_only=True)

    def to_representation(self, message):
        return chat_message_payload(message, message.reactions.all())


class MessageBodySerializer(serializers.Serializer):
    body = serializers.CharField(allow_blank=True, trim_whitespace=False)


class ReactionInputSerializer(serializers.Serializer):
    emoji = serializers.CharField(allow_blank=True)


class ReactionResultSerializer(serializers.Serializer):
    """The message's reactions after the change; the same as the data of `reaction.added` /
    `reaction.removed`."""

    chat_id = serializers.IntegerField()
    message_id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    emoji = serializers.CharField()
    reactions = ReactionSummarySerializer(many=True)


# ---------------------------------------------------------------- views


class IsChatMember(BasePermission):
    message = "Only members of this chat can do this."

    def has_object_permission(self, request, view, obj):
        return bool(getattr(obj, "is_member", False))


def _require_member(chat) -> None:
    if not chat.is_member:
        raise exceptions.PermissionDenied(IsChatMember.message)


@extend_schema_view(
    list=extend_schema(summary="Your team chats (newest first)"),
    retrieve=extend_schema(summary="One chat, with what a delete would remove"),
)
class ChatViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ChatSerializer
    permission_classes = [IsCompanyMember, IsChatMember]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the types
            return TeamChat.objects.none()
        if self.action == "list":
            return selectors.api_member_chats(self.request.user)
        return selectors.chats_with_membership(self.request.user, members=True)

    @extend_schema(request=ChatCreateSerializer, responses={201: ChatSerializer})
    def create(self, request, *args, **kwargs):
        payload = ChatCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        chat = services.create_chat(request.user, **payload.validated_data)
        chat = selectors.get_company_chat(request.user, chat.pk, members=True)
        return Response(ChatSerializer(chat).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ChatDetailSerializer)
    def retrieve(self, request, *args, **kwargs):
        chat = self.get_object()
        return Response(dict(ChatSerializer(chat).data, counts=selectors.chat_counts(chat)))

    @extend_schema(
        summary="Delete the chat for everyone",
        description=(
            "Any member may delete a chat; its messages and reactions go with it, and every "
            "member receives `chat.deleted` `{id, deleted_by}`. Requires an "
            "`Idempotency-Key` header."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            200: ChatDeletedSerializer,
            400: OpenApiResponse(description="The Idempotency-Key header is missing"),
            403: OpenApiResponse(description="You are not a member of this chat"),
            404: OpenApiResponse(description="No such chat in your company"),
            409: OpenApiResponse(description="A request with this key is still running"),
            422: OpenApiResponse(description="This key was used for a different request"),
        },
    )
    def destroy(self, request, *args, **kwargs):
        key = idempotency.Idempotency(request)
        if not key.key:
            self.get_object()  # another company's chat is a 404, a non-member's a 403, first
        key.require()
        return key.run(lambda: Response(services.delete_chat(request.user, self.get_object())))

    @extend_schema(
        summary="Leave the chat",
        request=None,
        responses={204: OpenApiResponse(description="You left the chat")},
    )
    @action(detail=True, methods=["post"])
    def leave(self, request, pk=None):
        services.leave_chat(request.user, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


CHAT_PK = OpenApiParameter("chat_pk", int, OpenApiParameter.PATH, description="The chat's id")
EMOJI = OpenApiParameter("emoji", str, OpenApiParameter.PATH, description="The emoji, URL-encoded")


@extend_schema_view(
    list=extend_schema(summary="A chat's messages, newest first", parameters=[CHAT_PK]),
    retrieve=extend_schema(parameters=[CHAT_PK]),
)
class ChatMessageViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """`/chats/{chat_pk}/messages/`: members only (403 for others of the company)."""

    serializer_class = ChatMessageSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def chat(self):
        if not hasattr(self, "_chat"):
            chat = selectors.get_company_chat(self.request.user, self.kwargs["chat_pk"])
            _require_member(chat)
            self._chat = chat
        return self._chat

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the types
            return ChatMessage.objects.none()
        return selectors.chat_message_list(self.chat())

    @extend_schema(
        summary="Send a message",
        parameters=[CHAT_PK],
        request=MessageBodySerializer,
        responses={201: ChatMessageSerializer},
    )
    def create(self, request, *args, **kwargs):
        payload = MessageBodySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        message = services.send_chat_message(
            request.user, self.chat(), payload.validated_data["body"]
        )
        return Response(ChatMessageSerializer(message).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Edit your message",
        description="Only its author may edit a message; reactions stay, `edited_at` is set.",
        parameters=[CHAT_PK],
        request=MessageBodySerializer,
        responses=ChatMessageSerializer,
    )
    def partial_update(self, request, *args, **kwargs):
        message = self.get_object()
        if message.author_id != request.user.pk:
            raise exceptions.PermissionDenied(_("Only its author can edit a message."))
        payload = MessageBodySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.edit_chat_message(request.user, message, payload.validated_data["body"])
        return Response(ChatMessageSerializer(self.get_object()).data)

    @extend_schema(
        summary="React to a message",
        description="Reacting again with the same emoji changes nothing (200 instead of 201).",
        parameters=[CHAT_PK],
        request=ReactionInputSerializer,
        responses={201: ReactionResultSerializer, 200: ReactionResultSerializer},
    )
    @action(detail=True, methods=["post"], url_path="reactions")
    def reactions(self, request, *args, **kwargs):
        message = self.get_object()
        payload = ReactionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        emoji = services.validate_emoji(payload.validated_data["emoji"])
        reactions, added = services.add_reaction(request.user, message, emoji)
        return Response(
            reaction_event_payload(message, request.user.pk, emoji, reactions),
            status=status.HTTP_201_CREATED if added else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Remove your reaction",
        description="Removing a reaction that is not there changes nothing.",
        parameters=[CHAT_PK, EMOJI],
        request=None,
        responses=ReactionResultSerializer,
    )
    @action(
        detail=True,
        methods=["delete"],
        url_path=r"reactions/(?P<emoji>[^/]+)",
        url_name="reaction",
    )
    def remove_reaction(self, request, *args, emoji=None, **kwargs):
        message = self.get_object()
        reactions, _removed = services.remove_reaction(request.user, message, emoji)
        return Response(reaction_event_payload(message, request.user.pk, emoji, reactions))
