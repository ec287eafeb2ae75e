"""Request guards that hold for every page and API call."""

from django.http import HttpResponseBadRequest, JsonResponse
from django.utils.translation import gettext as _

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class RefuseNulCharacters:
    """A NUL character in a query string or a form field is refused with a 400 naming the
    field: PostgreSQL stores no NUL in text, and every view would otherwise fail on it with a
    500. (The API takes JSON only, checked field by field by its serializers; its form
    bodies are left unread here, so that they get their 415.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        is_api = request.path.startswith("/api/")
        field = _field_with_nul(request.GET)
        if field is None and request.content_type in FORM_TYPES and not is_api:
            field = _field_with_nul(request.POST)
        if field is not None:
            message = _("Remove the NUL character (\\x00) from this value.")
            if is_api:
                return JsonResponse({field: [message]}, status=400)
            return HttpResponseBadRequest(f"{field}: {message}")
        return self.get_response(request)


def _field_with_nul(data) -> str | None:
    for key, values in data.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return key.replace("\x00", "\\x00")[:100]
    return None
