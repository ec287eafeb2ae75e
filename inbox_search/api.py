"""GET /api/v1/search/?q=: messages whose text matches, newest first, cursor-paginated, each
with its conversation and the matched words highlighted (escaped HTML with <mark> only)."""

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ValidationError

from crm.pagination import CursorPagination

from . import fts, selectors

MAX_QUERY_LENGTH = 200


class SearchPagination(CursorPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = ("-created_at", "-id")


class HitClientSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class HitConversationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    platform = serializers.CharField()
    subject = serializers.CharField()
    status = serializers.CharField()
    client = HitClientSerializer(allow_null=True)


class MessageHitSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="the message")
    direction = serializers.CharField()
    created_at = serializers.DateTimeField()
    conversation = HitConversationSerializer()
    snippet_html = serializers.SerializerMethodField(
        help_text="The text around the matches, HTML-escaped; the matched words in <mark>."
    )
    url = serializers.SerializerMethodField(help_text="the inbox page opened at this message")

    def get_snippet_html(self, message) -> str:
        return str(fts.headline_html(message.headline))

    def get_url(self, message) -> str:
        return f"/inbox/{message.conversation_id}/?message={message.pk}#message-{message.pk}"


def search_query(params) -> str:
    """The `q` parameter, or a 400 naming it (missing, too long, or no word in it)."""
    query = params.get("q", "")
    if len(query) > MAX_QUERY_LENGTH:
        raise ValidationError({"q": [_("At most %d characters.") % MAX_QUERY_LENGTH]})
    if not fts.words(query):
        raise ValidationError({"q": [_("Enter a word or number to search for.")]})
    return query


class SearchViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = MessageHitSerializer
    pagination_class = SearchPagination

    def get_queryset(self):
        return selectors.message_hits(self.request.user, search_query(self.request.query_params))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                str,
                required=True,
                description="words to find in message text (Russian, Ukrainian, English): "
                "each word matches by its stem or as the start of a word",
            )
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)
