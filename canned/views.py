"""Settings → Canned replies: the company's and your own; admins manage the company's."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.views import company_member_required

from . import selectors, services
from .forms import CannedReplyForm


@company_member_required
def canned_replies(request):
    replies = list(selectors.visible_replies(request.user))
    return render(
        request,
        "canned/list.html",
        {
            "company_replies": [reply for reply in replies if not reply.is_personal],
            "personal_replies": [reply for reply in replies if reply.is_personal],
        },
    )


def _save(request, form, action):
    if not form.is_valid():
        return False
    try:
        action(form.cleaned_data)
    except ValidationError as exc:
        form.add_error(None, exc)
        return False
    return True


@company_member_required
@require_http_methods(["GET", "POST"])
def canned_reply_create(request):
    form = CannedReplyForm(request.POST or None, user=request.user, creating=True)
    if request.method == "POST" and _save(
        request,
        form,
        lambda data: services.create_canned_reply(
            request.user,
            title=data["title"],
            shortcut=data["shortcut"],
            body=data["body"],
            personal=data.get("scope", "personal") != "company",
        ),
    ):
        return redirect("canned_replies")
    return render(request, "canned/form.html", {"form": form, "reply": None})


@company_member_required
@require_http_methods(["GET", "POST"])
def canned_reply_edit(request, pk):
    reply = selectors.get_reply(request.user, pk)
    if not services.can_manage(request.user, reply):
        raise PermissionDenied(_("Only company admins manage the company's canned replies."))
    form = CannedReplyForm(request.POST or None, instance=reply, user=request.user, creating=False)
    if request.method == "POST" and _save(
        request,
        form,
        lambda data: services.update_canned_reply(
            request.user,
            selectors.get_reply(request.user, pk),
            title=data["title"],
            shortcut=data["shortcut"],
            body=data["body"],
        ),
    ):
        return redirect("canned_replies")
    return render(request, "canned/form.html", {"form": form, "reply": reply})


@company_member_required
@require_http_methods(["GET", "POST"])
def canned_reply_delete(request, pk):
    reply = selectors.get_reply(request.user, pk)
    if not services.can_manage(request.user, reply):
        raise PermissionDenied(_("Only company admins manage the company's canned replies."))
    if request.method == "POST":
        services.delete_canned_reply(request.user, reply)
        return redirect("canned_replies")
    return render(request, "canned/delete.html", {"reply": reply})
