"""`status_label` next to `status` in the API: the words the pages show for it (crm.vocabulary),
in the reader's language. Clients keep using the codes; people read the label."""

from django.utils import translation
from rest_framework import serializers

from crm import vocabulary

HELP = (
    "The words for `status` in the reader's language (their profile's, else Accept-Language), "
    "exactly as the pages show them; `status` keeps the stable code."
)


def reader_language(request):
    """The reader's language as a context: a token or forced authentication happens in the
    view, after accounts.middleware chose the page language, so the user's own choice is
    applied here too."""
    language = getattr(getattr(request, "user", None), "language", "")
    return translation.override(language or translation.get_language())


class StatusLabelMixin(serializers.Serializer):
    status_label = serializers.SerializerMethodField(help_text=HELP)

    def get_status_label(self, row) -> str:
        with reader_language(self.context.get("request")):
            return str(vocabulary.status_label(row))
