"""Settings → Email: mailboxes with their polling state, add / edit, "Test connection",
delete. Writes go through services (save_channel, delete_channel)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.scoping import get_scoped_or_404
from accounts.views import company_member_required
from channels_integrations import selectors, services
from channels_integrations.email import quarantine
from channels_integrations.email import smtp as email_smtp
from channels_integrations.email.forms import EmailAccountForm
from channels_integrations.models import EmailAccount

from ..forms import KeptSecrets
from ..views.access import company_admin_required


@company_member_required
def email_list(request):
    return render(
        request,
        "channels_integrations/email_list.html",
        {"accounts": selectors.email_accounts_with_quarantine(request.user)},
    )


@company_member_required
@company_admin_required
@require_POST
def email_quarantine_retry(request, pk, item_pk):
    item = selectors.email_quarantined(request.user, pk, item_pk)
    outcome = quarantine.retry(item)
    if outcome["ok"]:
        messages.success(request, _("Mail UID %(uid)s imported.") % {"uid": item.uid})
    else:
        messages.error(
            request,
            _("Mail UID %(uid)s still could not be imported: %(reason)s")
            % {"uid": item.uid, "reason": outcome["reason"]},
        )
    return redirect(f"{reverse('email_accounts')}#email-{pk}")


@company_member_required
@company_admin_required
def email_quarantine_raw(request, pk, item_pk):
    item = selectors.email_quarantined(request.user, pk, item_pk)
    response = HttpResponse(bytes(item.raw), content_type="message/rfc822")
    response["Content-Disposition"] = f'attachment; filename="uid-{item.uid}.eml"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _save(request, account=None):
    names = [name for name in EmailAccountForm.base_fields if name != "password"]
    initial = {name: getattr(account, name) for name in names} if account else None
    kept = KeptSecrets(request, f"email:{account.pk if account else 'new'}", ("password",))
    form = EmailAccountForm(
        kept.fill(request.POST) if request.method == "POST" else None,
        initial=initial,
        password_set=bool(account.password) if account else None,
        company=request.user.company,
        routing=account,
    )
    if request.method == "POST" and not form.is_valid():
        kept.keep(form)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.save_channel(request.user, EmailAccount, account, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
            kept.keep(form)
        else:
            kept.clear()
            messages.success(request, _("Mailbox %(address)s saved.") % {"address": saved.address})
            return redirect("email_accounts")
    return render(
        request, "channels_integrations/email_form.html", {"form": form, "account": account}
    )


@company_member_required
@company_admin_required
def email_create(request):
    return _save(request)


@company_member_required
@company_admin_required
def email_edit(request, pk):
    return _save(request, get_scoped_or_404(EmailAccount, request.user, pk=pk))


@company_member_required
@company_admin_required
@require_POST
def email_test(request, pk):
    account = get_scoped_or_404(EmailAccount, request.user, pk=pk)
    result = email_smtp.test_connection(account)
    for side in ("imap", "smtp"):
        report = messages.success if result[side]["ok"] else messages.error
        report(request, f"{side.upper()}: {result[side]['detail']}")
    return redirect("email_accounts")


@company_member_required
@company_admin_required
def email_delete(request, pk):
    account = get_scoped_or_404(EmailAccount, request.user, pk=pk)
    if request.method == "POST":
        services.delete_channel(request.user, account)
        messages.success(
            request,
            _("Mailbox %(address)s and its conversations were deleted.")
            % {"address": account.address},
        )
        return redirect("email_accounts")
    return render(request, "channels_integrations/email_delete.html", {"account": account})
