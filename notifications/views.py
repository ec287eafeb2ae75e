"""Pages: the user's notifications (also the bell's dropdown, `?partial=1`), opening one
(marks it read, then goes where it points), marking all read, and the preferences."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.views import company_member_required

from . import selectors, services
from .models import ADMIN_KINDS, Kind

PER_PAGE = 30
DROPDOWN_SIZE = 8


@company_member_required
@require_GET
def notification_list(request):
    rows = selectors.notifications_of(request.user)
    unread = selectors.unread_count(request.user)
    if request.GET.get("partial"):
        return render(
            request,
            "notifications/_dropdown.html",
            {"notifications": rows[:DROPDOWN_SIZE], "unread": unread},
        )
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request, "notifications/list.html", {"page": page, "notifications": page, "unread": unread}
    )


@company_member_required
@require_POST
def notification_open(request, pk):
    notification = services.mark_read(request.user, selectors.get_notification(request.user, pk))
    target = notification.url
    if not target or not url_has_allowed_host_and_scheme(target, allowed_hosts=None):
        return redirect("notifications")
    return redirect(target)


@company_member_required
@require_POST
def notification_read_all(request):
    marked = services.mark_all_read(request.user)
    if request.htmx:
        return render(request, "notifications/_dropdown.html", {"notifications": [], "unread": 0})
    if marked:
        messages.success(request, _("All notifications are marked read."))
    return redirect("notifications")


@company_member_required
@require_http_methods(["GET", "POST"])
def notification_settings(request):
    preference = selectors.preferences_of(request.user)
    errors = []
    if request.method == "POST":
        wanted = request.POST.getlist("kinds")
        muted = [kind for kind in Kind.values if kind not in wanted]
        unknown = [kind for kind in wanted if kind not in Kind.values]
        try:
            if unknown:
                raise ValidationError({"kinds": [_("Unknown kind.")]})
            preference = services.update_preferences(
                request.user, muted_kinds=muted, sound=request.POST.get("sound") == "on"
            )
        except ValidationError as exc:
            errors = exc.messages
        else:
            messages.success(request, _("Notification preferences saved."))
            return redirect("notification_settings")
    kinds = [
        {"value": value, "label": label, "on": preference.wants(value)}
        for value, label in Kind.choices
        if value not in ADMIN_KINDS or request.user.is_company_admin
    ]
    return render(
        request,
        "notifications/settings.html",
        {"preference": preference, "kinds": kinds, "errors": errors},
        status=400 if errors else 200,
    )
