"""What a server error looks like: JSON for the API (its clients parse every answer), the
usual page elsewhere. Wired as handler500 in crm.urls (Django uses it when DEBUG is off)."""

from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": _("Something went wrong on our side; it has been logged.")}, status=500
        )
    return defaults.server_error(request)
