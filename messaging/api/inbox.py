"""Inbox REST API: conversations (list/detail/assign/close/reopen/read) and their messages
(list/send). Reads go through selectors (tenant-scoped), writes through services."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import CharField
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts.scoping import get_scoped_or_404, scoped
from crm import idempotency, vocabulary
from crm.api.base import nested_errors
from crm.api.status import StatusLabelMixin, reader_language
from crm.pagination import CursorPagination
from messaging import selectors, services
from messaging.models import Attachment, Conversation, Message
from messaging.services import reactions as reaction_services
from triage import api as triage_api
from triage import selectors as triage_selectors
from triage import services as triage_services
from triage.filters import ANY_STATUS, DEFAULT_STATUS


class ConversationPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-last_message_at", "-id")


class MessagePagination(CursorPagination):
    """Newest first: a client pages upward through history with `next`."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-id",)


class PersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="display_name")


class ClientSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField()
    email = serializers.CharField()


class WindowSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["open", "closed"])
    closes_at = serializers.DateTimeField(
        allow_null=True,
        help_text="when free text stops being allowed (null: the client never wrote)",
    )


def window_data(window) -> dict | None:
    if window is None:
        return None
    return {"state": window.state, "closes_at": _iso(window.closes_at)}


class ConversationSerializer(StatusLabelMixin, serializers.ModelSerializer):
    client = ClientSummarySerializer(read_only=True)
    assignee = PersonSerializer(read_only=True, allow_null=True)
    window = serializers.SerializerMethodField(
        help_text="The customer-service window (WhatsApp Cloud: 24 h after the client's last "
        "message): free text only while open, else a template. null: the channel has none."
    )

    labels = serializers.SerializerMethodField(help_text="ids of the conversation's labels")

    @extend_schema_field(WindowSerializer(allow_null=True))
    def get_window(self, conversation) -> dict | None:
        return window_data(selectors.reply_window(conversation))

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_labels(self, conversation) -> list:
        return triage_selectors.labels_of_conversations([conversation.pk]).get(conversation.pk, [])

    class Meta:
        model = Conversation
        fields = [
            "id",
            "platform",
            "external_thread_id",
            "source_id",
            "client",
            "assignee",
            "subject",
            "status",
            "status_label",
            "snoozed_until",
            "labels",
            "last_message_at",
            "last_message_preview",
            "unread_count",
            "created_at",
            "window",
        ]
        read_only_fields = fields


class MailHeadersSerializer(serializers.Serializer):
    subject = serializers.CharField()
    to = serializers.ListField(child=serializers.CharField())
    cc = serializers.ListField(child=serializers.CharField())
    bcc = serializers.ListField(child=serializers.CharField(), help_text="Our replies only")
    has_html = serializers.BooleanField(help_text="A sanitised HTML body is stored")


MAIL_KEYS = ("message_id", "to")  # what an email message's metadata has (in and out)


class MessageReactionSerializer(serializers.Serializer):
    emoji = serializers.CharField()
    from_customer = serializers.BooleanField(help_text="The customer's, else ours")
    author_id = serializers.IntegerField(allow_null=True, help_text="Ours: the agent who set it")
    error = serializers.CharField(help_text="Ours: why the channel refused it (empty: sent)")


class AttachmentSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="Where the stored file is downloaded")

    def get_url(self, attachment) -> str | None:
        return reverse("attachment_download", args=[attachment.pk]) if attachment.stored else None

    class Meta:
        model = Attachment
        fields = [
            "id",
            "kind",
            "filename",
            "content_type",
            "size",
            "download_state",
            "download_error",
            "url",
        ]
        read_only_fields = fields


class MessageSerializer(StatusLabelMixin, serializers.ModelSerializer):
    mail = serializers.SerializerMethodField(help_text="Email messages: their headers")
    content = serializers.SerializerMethodField(
        help_text="Typed content (location, contacts, choice, form, order, notice, "
        "unsupported): {kind, ...}; null for text and media"
    )
    reactions = serializers.SerializerMethodField()
    edited_at = serializers.SerializerMethodField()
    deleted = serializers.SerializerMethodField(
        help_text="The sender deleted it: `body` is empty (admins see the text on the page)"
    )

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_content(self, message) -> dict | None:
        return (message.metadata or {}).get("content")

    @extend_schema_field(MessageReactionSerializer(many=True))
    def get_reactions(self, message) -> list:
        return [
            {
                "emoji": row.emoji,
                "from_customer": row.from_customer,
                "author_id": row.author_id,
                "error": row.error,
            }
            for row in sorted(message.reactions.all(), key=lambda r: (not r.from_customer, r.pk))
        ]

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_edited_at(self, message) -> str | None:
        return (message.metadata or {}).get("edited_at")

    def get_deleted(self, message) -> bool:
        return bool((message.metadata or {}).get("deleted"))

    def to_representation(self, message):
        data = super().to_representation(message)
        if data["deleted"]:
            data["body"] = ""
        return data

    attachments = AttachmentSerializer(many=True, read_only=True)
    quoted_message_id = serializers.SerializerMethodField(
        help_text="The message this one quotes (a reply to it), if any"
    )

    def get_quoted_message_id(self, message) -> int | None:
        return (message.metadata or {}).get("quoted_message_id")

    @extend_schema_field(MailHeadersSerializer(allow_null=True))
    def get_mail(self, message) -> dict | None:
        metadata = message.metadata or {}
        if not any(key in metadata for key in MAIL_KEYS):
            return None
        return {
            "subject": metadata.get("subject", ""),
            "to": metadata.get("to", []),
            "cc": metadata.get("cc", []),
            "bcc": metadata.get("bcc", []),
            "has_html": bool(metadata.get("html")),
        }

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation_id",
            "direction",
            "status",
            "status_label",
            "body",
            "sender_name",
            "sender_address",
            "author_id",
            "bot_id",
            "external_id",
            "error",
            "created_at",
            "sent_at",
            "delivered_at",
            "read_at",
            "edited_at",
            "deleted",
            "content",
            "reactions",
            "mail",
            "attachments",
            "quoted_message_id",
        ]
        read_only_fields = fields


class MessageReactionInputSerializer(serializers.Serializer):
    emoji = serializers.CharField(allow_blank=True, help_text="One emoji")


class MessageReactionResultSerializer(serializers.Serializer):
    """The message's reactions after the change; the data of `message.reacted` too."""

    id = serializers.IntegerField(help_text="The message")
    conversation_id = serializers.IntegerField()
    reactions = MessageReactionSerializer(many=True)


class TemplateSendSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=512)
    language = serializers.CharField(max_length=20, help_text="e.g. en_US")
    variables = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(allow_blank=True)),
        required=False,
        default=dict,
        help_text='per component, the values of {{1}}, {{2}} ...: {"body": ["Ann", "42"]}',
    )


class SendSerializer(serializers.Serializer):
    body = serializers.CharField(
        allow_blank=True,
        trim_whitespace=False,
        required=False,
        default="",
        help_text="The text; leave it out when sending a template",
    )
    template = TemplateSendSerializer(
        required=False,
        help_text="WhatsApp Cloud: an approved template of the conversation's number (the only "
        "thing that can be sent while the 24-hour window is closed)",
    )
    reply_to = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="A message of this conversation to quote (channels that quote: WhatsApp, Telegram)",
    )
    # Email conversations only (other channels answer 400 naming the field).
    subject = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text='Email: the subject (default "Re: " + the conversation\'s)',
    )
    cc = serializers.ListField(
        child=serializers.CharField(max_length=320),
        required=False,
        max_length=20,
        help_text="Email: addresses to copy",
    )
    bcc = serializers.ListField(
        child=serializers.CharField(max_length=320),
        required=False,
        max_length=20,
        help_text="Email: addresses to copy blind (in the envelope, never in a header)",
    )

    OPTIONS = ("subject", "cc", "bcc")


class SendFilesSerializer(SendSerializer):
    template = None  # a template goes out on its own (the JSON send)
    body = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="The caption"
    )
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True, use_url=False),
        min_length=1,
        help_text="One or more files (repeat the field); the channel's limits apply",
    )


class AssignSerializer(serializers.Serializer):
    assignee = serializers.IntegerField(
        allow_null=True, help_text="A member's id, or null to unassign"
    )


FILTER_PARAMETERS = [
    OpenApiParameter("platform", str, enum=["whatsapp", "telegram", "email"]),
    OpenApiParameter(
        "status",
        str,
        enum=["open", "pending", "snoozed", "closed", "all"],
        description="one state, or `all` for every state (default: `open`, as the inbox page)",
    ),
    OpenApiParameter("label", int, description="a label id of your company"),
    OpenApiParameter("assignee", str, description="`me`, `unassigned` or a member id"),
    OpenApiParameter("unread", bool, description="only conversations with unread messages"),
    OpenApiParameter("q", str, description="search client name, phone, email and subject"),
]


def filter_conversations(user, params, rows=None):
    """The inbox filters of a request's query string (the same selector as the inbox page):
    open conversations unless `status` asks for another state or `all`; an unknown status is
    a 400 naming the field. `rows`: as selectors.inbox_conversations."""
    assignee = params.get("assignee", "")
    status = params.get("status", "") or DEFAULT_STATUS
    if status != ANY_STATUS and status not in Conversation.Status.values:
        choices = ", ".join([*Conversation.Status.values, ANY_STATUS])
        raise serializers.ValidationError(
            {
                "status": [
                    _("Unknown status “%(value)s”. Choose from: %(choices)s.")
                    % {"value": status, "choices": choices}
                ]
            }
        )
    conversations = selectors.inbox_conversations(
        user,
        platform=params.get("platform", ""),
        status="" if status == ANY_STATUS else status,
        assigned={"me": "mine", "unassigned": "unassigned"}.get(assignee, ""),
        unread=params.get("unread") in ("1", "true", "yes"),
        query=params.get("q", ""),
        label=params.get("label", ""),
        last_status=False,  # not a field of the API's conversations
        rows=rows,
    )
    if assignee.isdigit():
        conversations = conversations.filter(assignee_id=int(assignee))
    return conversations


LIST_COLUMNS = (
    *(
        name
        for name in ConversationSerializer.Meta.fields
        if name not in ("client", "assignee", "window", "labels", "status_label")
    ),
    "client_id",
    "client__name",
    "client_phone",
    "client__email",
    "assignee_id",
    "assignee__username",
    "assignee__first_name",
    "assignee__last_name",
)


# The list's rows: plain values, the client's phone as its stored E.164 text. Built once per
# process and never evaluated itself; each request chains its filters from it (a clone).
# Resolving these columns' joins per request was ~0.5 ms of its CPU (half the query's build).
LIST_ROWS = Conversation.objects.annotate(
    client_phone=Cast("client__phone", output_field=CharField())
).values(*LIST_COLUMNS, "last_inbound_at")


def _iso(value):
    """DRF's DateTimeField output: ISO 8601, UTC as `Z`."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _list_row(row: dict, status_words: dict[str, str]) -> dict:
    """One conversation of the list, shaped exactly as ConversationSerializer shapes it."""
    data = {name: row[name] for name in ConversationSerializer.Meta.fields if name in row}
    for name in ("last_message_at", "created_at", "snoozed_until"):
        data[name] = _iso(row[name])
    data["client"] = (
        {
            "id": row["client_id"],
            "name": row["client__name"],
            "phone": row["client_phone"] or "",
            "email": row["client__email"],
        }
        if row["client_id"]
        else None
    )
    full_name = f"{row['assignee__first_name'] or ''} {row['assignee__last_name'] or ''}".strip()
    data["assignee"] = (
        {"id": row["assignee_id"], "name": full_name or row["assignee__username"]}
        if row["assignee_id"]
        else None
    )
    data["status_label"] = status_words.get(row["status"], row["status"])
    return data


class ConversationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = ConversationSerializer
    pagination_class = ConversationPagination

    def get_queryset(self):
        if self.action == "list":
            return filter_conversations(
                self.request.user, self.request.query_params, rows=LIST_ROWS
            )
        return scoped(Conversation, self.request.user).select_related("client", "assignee")

    @extend_schema(parameters=FILTER_PARAMETERS, responses=ConversationSerializer(many=True))
    def list(self, request, *args, **kwargs):
        # The busiest read of the product: plain rows (`values()`) into the serializer's exact
        # shape, without model instances, phone parsing or per-field serializer calls.
        page = self.paginate_queryset(self.get_queryset())
        windows = selectors.reply_windows(page)
        labels = triage_selectors.labels_of_conversations(row["id"] for row in page)
        with reader_language(request):
            status_words = vocabulary.labels_in_active_language(Conversation)
            results = [
                dict(
                    _list_row(row, status_words),
                    window=window_data(windows[row["id"]]),
                    labels=labels.get(row["id"], []),
                )
                for row in page
            ]
        return self.get_paginated_response(results)

    def _respond(self, conversation):
        return Response(ConversationSerializer(conversation).data)

    @extend_schema(request=AssignSerializer, responses=ConversationSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        conversation = self.get_object()
        payload = AssignSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        assignee_id = payload.validated_data["assignee"]
        assignee = None
        if assignee_id is not None:
            assignee = scoped(get_user_model(), request.user).filter(pk=assignee_id).first()
            if assignee is None:
                raise serializers.ValidationError(
                    {"assignee": [_("Choose a member of your company.")]}
                )
        return self._respond(services.assign_conversation(request.user, conversation, assignee))

    @extend_schema(request=None, responses=ConversationSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._respond(
            services.set_conversation_status(
                request.user, self.get_object(), Conversation.Status.CLOSED
            )
        )

    @extend_schema(request=None, responses=ConversationSerializer)
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        return self._respond(
            services.set_conversation_status(
                request.user, self.get_object(), Conversation.Status.OPEN
            )
        )

    @extend_schema(request=triage_api.StatusSerializer, responses=ConversationSerializer)
    @action(detail=True, methods=["post"], url_path="status")
    def set_status(self, request, pk=None):
        """Open, pending, snoozed (until `snoozed_until`, or until the customer writes) or
        closed; published as `conversation.status_changed`."""
        conversation = self.get_object()
        payload = triage_api.StatusSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return self._respond(
            services.set_conversation_status(
                request.user,
                conversation,
                payload.validated_data["status"],
                snoozed_until=payload.validated_data.get("snoozed_until"),
            )
        )

    @triage_api.LABELS_SCHEMA
    @action(detail=True, methods=["post"], url_path="labels")
    def set_labels(self, request, pk=None):
        """Replace the conversation's labels (`labels`: ids of your company's labels)."""
        conversation = self.get_object()
        payload = triage_api.SetLabelsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        labels = triage_api.company_labels_or_error(request.user, payload.validated_data["labels"])
        ids = triage_services.set_conversation_labels(request.user, conversation, labels)
        return Response({"id": conversation.pk, "label_ids": ids})

    @triage_api.BULK_SCHEMA
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        """One action (assign, label, unlabel, close) on many conversations of your company;
        each that fails is named in `failed`, the others are done."""
        result = triage_api.bulk_from_request(
            request.user,
            request.data,
            matching=lambda filters: filter_conversations(request.user, filters),
        )
        return Response(result.as_dict())

    @extend_schema(request=None, responses=ConversationSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        return self._respond(services.mark_conversation_read(request.user, self.get_object()))


class ConversationMessageViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """`/conversations/{conversation_pk}/messages/`: history newest first; POST sends a reply."""

    serializer_class = MessageSerializer
    pagination_class = MessagePagination

    def conversation(self) -> Conversation:
        if not hasattr(self, "_conversation"):
            self._conversation = get_scoped_or_404(
                selectors.conversation_with_client(),
                self.request.user,
                pk=self.kwargs["conversation_pk"],
            )
        return self._conversation

    def get_queryset(self):
        return Message.objects.filter(conversation=self.conversation()).prefetch_related(
            "reactions", "attachments"
        )

    def _message(self, pk) -> Message:
        return get_scoped_or_404(
            Message.objects.select_related("conversation"),
            self.request.user,
            pk=pk,
            conversation_id=self.conversation().pk,
        )

    @extend_schema(
        request=SendSerializer,
        parameters=[idempotency.parameter()],
        responses={
            201: MessageSerializer,
            422: OpenApiResponse(description="This Idempotency-Key was used for another request"),
        },
    )
    def create(self, request, *args, **kwargs):
        conversation = self.conversation()  # another company's conversation: 404 first
        return idempotency.run(request, lambda: self._send(request, conversation))

    def _send(self, request, conversation, serializer=SendSerializer):
        payload = serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        options = {name: data[name] for name in SendSerializer.OPTIONS if name in data}
        reply_to = None
        if data.get("reply_to"):
            reply_to = Message.objects.filter(
                conversation=conversation, pk=data["reply_to"]
            ).first()
            if reply_to is None:
                raise serializers.ValidationError(
                    {"reply_to": [_("Choose a message of this conversation.")]}
                )
        try:
            message = services.send_message(
                conversation,
                request.user,
                data.get("body", ""),
                options=options,
                template=data.get("template"),
                files=data.get("files"),
                reply_to=reply_to,
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError(nested_errors(exc)) from None
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Send files (multipart)",
        description=(
            "A reply with files: `multipart/form-data` with one `files` part per file, an "
            "optional `body` (the caption) and the JSON send's other fields. Each file is "
            "checked against the channel's limits (type, size, count) before anything is "
            "stored: a file that breaks one is a 400 on `files` naming it and the limit. The "
            "message and its files are stored `queued` together, then sent like any reply."
        ),
        request={"multipart/form-data": SendFilesSerializer},
        parameters=[idempotency.parameter()],
        responses={
            201: MessageSerializer,
            422: OpenApiResponse(description="This Idempotency-Key was used for another request"),
        },
    )
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser], url_path="files")
    def files(self, request, conversation_pk=None):
        conversation = self.conversation()
        return idempotency.run(
            request, lambda: self._send(request, conversation, SendFilesSerializer)
        )

    @extend_schema(
        summary="Send a failed message again",
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="The message")],
        request=None,
        responses={200: MessageSerializer},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, conversation_pk=None, pk=None):
        message = get_scoped_or_404(
            Message.objects.select_related("conversation"),
            request.user,
            pk=pk,
            conversation_id=self.conversation().pk,
        )
        return Response(MessageSerializer(services.retry_message(request.user, message)).data)

    @extend_schema(
        summary="React to a customer's message",
        description="Sets our reaction (one per message: it replaces ours, if any) and sends it "
        "through the channel; a channel without reactions, or a message that is not the "
        "customer's, is a 400 naming the field.",
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="The message")],
        request=MessageReactionInputSerializer,
        responses={200: MessageReactionResultSerializer},
    )
    @action(detail=True, methods=["post"], url_path="reactions")
    def reactions(self, request, conversation_pk=None, pk=None):
        message = self._message(pk)
        payload = MessageReactionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        reactions = reaction_services.react(request.user, message, payload.validated_data["emoji"])
        return Response(
            {"id": message.pk, "conversation_id": message.conversation_id, "reactions": reactions}
        )

    @extend_schema(
        summary="Remove our reaction",
        description="Removing a reaction that is not there changes nothing.",
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="The message")],
        request=None,
        responses={200: MessageReactionResultSerializer},
    )
    @reactions.mapping.delete
    def remove_reaction(self, request, conversation_pk=None, pk=None):
        message = self._message(pk)
        reactions = reaction_services.unreact(request.user, message)
        return Response(
            {"id": message.pk, "conversation_id": message.conversation_id, "reactions": reactions}
        )


class AttachmentPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-id",)


class AttachmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`/attachments/`: the files of the user's company, newest first (`?conversation=<id>`
    for one conversation's); `/attachments/{id}/` one of them with its download state;
    `retry-download/` tries a failed download again."""

    serializer_class = AttachmentSerializer
    pagination_class = AttachmentPagination

    def get_queryset(self):
        rows = scoped(Attachment, self.request.user)
        conversation = self.request.query_params.get("conversation", "")
        if self.action == "list" and conversation.isdigit():
            rows = rows.filter(conversation_id=int(conversation))
        return rows

    @extend_schema(
        parameters=[OpenApiParameter("conversation", int, description="Only this conversation's")]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Download a failed inbound file again",
        request=None,
        responses={200: AttachmentSerializer},
    )
    @action(detail=True, methods=["post"], url_path="retry-download")
    def retry_download(self, request, pk=None):
        from messaging.services.downloads import retry_download

        attachment = retry_download(request.user, self.get_object())
        return Response(AttachmentSerializer(attachment).data)
