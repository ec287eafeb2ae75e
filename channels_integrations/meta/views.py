"""Settings → Instagram & Messenger: the company's Pages and Instagram accounts with their
webhook URL and state; admins add, edit, test and delete them (writes through services)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.scoping import get_scoped_or_404, scoped
from accounts.views import company_member_required

from .. import services
from ..forms import KeptSecrets
from ..views.access import company_admin_required
from . import accounts
from .forms import SECRET_NAMES, InstagramAccountForm, MessengerPageForm
from .models import InstagramAccount, MessengerPage

KINDS = {
    MessengerPage: (MessengerPageForm, "page", gettext_lazy("Messenger page")),
    InstagramAccount: (InstagramAccountForm, "instagram", gettext_lazy("Instagram account")),
}


@company_member_required
def meta_list(request):
    return render(
        request,
        "meta/list.html",
        {
            "pages": scoped(MessengerPage, request.user),
            "instagram_accounts": scoped(InstagramAccount, request.user),
        },
    )


def _save(request, model, account=None):
    form_class, slug, label = KINDS[model]
    secrets_set = None
    initial = None
    if account is not None:
        secrets_set = {name: bool(getattr(account, name)) for name in SECRET_NAMES}
        initial = {
            name: getattr(account, name)
            for name in form_class.base_fields
            if name not in SECRET_NAMES
        }
    kept = KeptSecrets(request, f"meta-{slug}:{account.pk if account else 'new'}", SECRET_NAMES)
    form = form_class(
        kept.fill(request.POST) if request.method == "POST" else None,
        initial=initial,
        secrets_set=secrets_set,
        company=request.user.company,
        routing=account,
    )
    if request.method == "POST" and not form.is_valid():
        kept.keep(form)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.save_channel(request.user, model, account, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            kept.keep(form)
        else:
            kept.clear()
            messages.success(request, _("%(name)s saved.") % {"name": saved.name})
            return redirect("meta_accounts")
    return render(
        request,
        "meta/form.html",
        {"form": form, "account": account, "label": label, "slug": slug},
    )


@company_member_required
@company_admin_required
def page_create(request):
    return _save(request, MessengerPage)


@company_member_required
@company_admin_required
def page_edit(request, pk):
    return _save(request, MessengerPage, get_scoped_or_404(MessengerPage, request.user, pk=pk))


@company_member_required
@company_admin_required
def instagram_create(request):
    return _save(request, InstagramAccount)


@company_member_required
@company_admin_required
def instagram_edit(request, pk):
    account = get_scoped_or_404(InstagramAccount, request.user, pk=pk)
    return _save(request, InstagramAccount, account)


def _test(request, model, pk):
    account = get_scoped_or_404(model, request.user, pk=pk)
    result = accounts.test_connection(request.user, account)
    (messages.success if result["ok"] else messages.error)(request, result["detail"])
    return redirect("meta_accounts")


@company_member_required
@company_admin_required
@require_POST
def page_test(request, pk):
    return _test(request, MessengerPage, pk)


@company_member_required
@company_admin_required
@require_POST
def instagram_test(request, pk):
    return _test(request, InstagramAccount, pk)


def _delete(request, model, pk):
    account = get_scoped_or_404(model, request.user, pk=pk)
    if request.method == "POST":
        services.delete_channel(request.user, account)
        messages.success(
            request, _("%(name)s and its conversations were deleted.") % {"name": account.name}
        )
        return redirect("meta_accounts")
    return render(
        request,
        "meta/delete.html",
        {
            "account": account,
            "counts": accounts.deletion_preview(account),
            "label": KINDS[model][2],
        },
    )


@company_member_required
@company_admin_required
def page_delete(request, pk):
    return _delete(request, MessengerPage, pk)


@company_member_required
@company_admin_required
def instagram_delete(request, pk):
    return _delete(request, InstagramAccount, pk)
