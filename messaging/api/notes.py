"""`/conversations/{conversation_pk}/notes/`: a conversation's private notes (newest first);
POST writes one (`@username` mentions notify those colleagues). Never sent to the customer."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from accounts.scoping import get_scoped_or_404
from crm.api.base import nested_errors
from messaging import selectors, services
from messaging.models import Message
from messaging.services.notes import NOTE_MAX_LENGTH

from .inbox import MessagePagination


class NoteSerializer(serializers.ModelSerializer):
    mentions = serializers.SerializerMethodField(help_text="ids of the colleagues mentioned")

    class Meta:
        model = Message
        fields = ["id", "conversation", "author", "sender_name", "body", "mentions", "created_at"]
        read_only_fields = fields

    def get_mentions(self, note) -> list[int]:
        return list((note.metadata or {}).get("mentions", []))


class NoteInputSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=NOTE_MAX_LENGTH, trim_whitespace=True)


class ConversationNoteViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = NoteSerializer
    pagination_class = MessagePagination

    def conversation(self):
        if not hasattr(self, "_conversation"):
            self._conversation = get_scoped_or_404(
                selectors.conversation_with_client(),
                self.request.user,
                pk=self.kwargs["conversation_pk"],
            )
        return self._conversation

    def get_queryset(self):
        return Message.objects.filter(
            conversation=self.conversation(), direction=Message.Direction.NOTE
        )

    @extend_schema(request=NoteInputSerializer, responses={201: NoteSerializer})
    def create(self, request, *args, **kwargs):
        conversation = self.conversation()  # another company's conversation: 404 first
        payload = NoteInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            note = services.add_note(request.user, conversation, payload.validated_data["body"])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(nested_errors(exc)) from None
        return Response(NoteSerializer(note).data, status=status.HTTP_201_CREATED)
