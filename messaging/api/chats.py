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

import hashlib
import logging
import time
import uuid

from django.core.cache import cache
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
from messaging import selectors, services
from messaging.models import ChatMessage, TeamChat
from messaging.payloads import chat_message_payload, chat_payload, reaction_event_payload

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- idempotency

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_TTL = 24 * 60 * 60  # a repeat within a day gets the first response
IDEMPOTENCY_LOCK_TTL = 60  # longest a first request may hold the key before others proceed
IDEMPOTENCY_WAIT = 5.0  # how long a concurrent duplicate waits for the first one's answer
IDEMPOTENCY_KEY_MAX = 255


class IdempotencyKeyError(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message, code=None):
        super().__init__({IDEMPOTENCY_HEADER: [message]}, code)


class IdempotencyKeyReused(IdempotencyKeyError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY


class IdempotencyKeyInFlight(IdempotencyKeyError):
    status_code = status.HTTP_409_CONFLICT


class Idempotency:
    """At most once per (user, Idempotency-Key): the first request runs, and any repeat, even
    one that arrives while the first is still running, gets the first one's status and body
    (stored in the cache, i.e. Redis, for IDEMPOTENCY_TTL).

    A lock taken with `cache.add` (SET NX) makes concurrent duplicates wait for the first
    answer instead of running again. Only successful answers are stored: a request that failed
    (404, 403, ...) changed nothing, so a repeat is simply evaluated again.
    """

    def __init__(self, request):
        self.key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if len(self.key) > IDEMPOTENCY_KEY_MAX:
            raise IdempotencyKeyError(f"At most {IDEMPOTENCY_KEY_MAX} characters.")
        digest = hashlib.sha256(self.key.encode()).hexdigest()
        self.result_key = f"idempotency:{request.user.pk}:{digest}"
        self.lock_key = f"{self.result_key}:lock"
        self.fingerprint = f"{request.method} {request.path}"

    def require(self) -> None:
        if not self.key:
            raise IdempotencyKeyError(
                "This header is required: send a new unique value (e.g. a UUID) with each "
                "delete, and the same value again when you retry it."
            )

    def run(self, perform) -> Response:
        self.require()
        token = uuid.uuid4().hex
        deadline = time.monotonic() + IDEMPOTENCY_WAIT
        while True:
            replay = self._replay()
            if replay is not None:
                return replay
            if cache.add(self.lock_key, token, IDEMPOTENCY_LOCK_TTL):
                break
            if time.monotonic() > deadline:
                raise IdempotencyKeyInFlight(
                    "A request with this key is still being processed; retry shortly."
                )
            time.sleep(0.05)
        try:
            replay = self._replay()  # the first one may have finished just before our lock
            if replay is not None:
                return replay
            response = perform()
            if status.is_success(response.status_code):
                entry = {
                    "fingerprint": self.fingerprint,
                    "status": response.status_code,
                    "body": response.data,
                }
                cache.set(self.result_key, entry, IDEMPOTENCY_TTL)
            return response
        finally:
            if cache.get(self.lock_key) == token:
                cache.delete(self.lock_key)

    def _replay(self) -> Response | None:
        entry = cache.get(self.result_key)
        if entry is None:
            return None
        if entry["fingerprint"] != self.fingerprint:
            raise IdempotencyKeyReused("This key was already used for a different request.")
        logger.info("api: idempotent replay of %s", self.fingerprint)
        return Response(
            entry["body"], status=entry["status"], headers={"Idempotent-Replayed": "true"}
        )


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=True,
    description=(
        "A new unique value (e.g. a UUID) per delete. Repeating the request with the same key "
        "(within 24 h) returns the first response again and does nothing more."
    ),
)


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
        idempotency = Idempotency(request)
        if not idempotency.key:
            self.get_object()  # another company's chat is a 404, a non-member's a 403, first
        return idempotency.run(
            lambda: Response(services.delete_chat(request.user, self.get_object()))
        )

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
            raise exceptions.PermissionDenied("Only its author can edit a message.")
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
