"""Settings → Telegram: accounts with their listener's state, add / edit, log in (send code →
code → 2FA password), delete. Writes go through services (save_channel, telegram.login)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.scoping import get_scoped_or_404
from accounts.views import company_member_required
from channels_integrations import selectors, services
from channels_integrations.models import TelegramAccount
from channels_integrations.telegram import accounts
from channels_integrations.telegram import login as telegram_login
from channels_integrations.telegram.forms import TelegramAccountForm, TelegramLoginForm

from ..forms import KeptSecrets
from ..views.access import company_admin_required

EDITABLE = ("name", "phone", "api_id", "is_active")


@company_member_required
def telegram_list(request):
    return render(
        request,
        "channels_integrations/telegram_list.html",
        {"accounts": selectors.telegram_accounts(request.user)},
    )


SECRETS = ("api_hash", "session_string")


def _save(request, account=None):
    secrets_set = None
    if account is not None:
        secrets_set = {
            "api_hash": bool(account.api_hash),
            "session_string": bool(account.session_string),
        }
    initial = {name: getattr(account, name) for name in EDITABLE} if account else None
    kept = KeptSecrets(request, f"telegram:{account.pk if account else 'new'}", SECRETS)
    form = TelegramAccountForm(
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
            saved = services.save_channel(
                request.user, TelegramAccount, account, **form.cleaned_data
            )
        except ValidationError as exc:
            form.add_error(None, exc)
            kept.keep(form)
        else:
            kept.clear()
            messages.success(request, _("Telegram account %(name)s saved.") % {"name": saved.name})
            if not saved.session_string:
                return redirect("telegram_login", pk=saved.pk)
            return redirect("telegram_accounts")
    return render(
        request, "channels_integrations/telegram_form.html", {"form": form, "account": account}
    )


@company_member_required
@company_admin_required
def telegram_create(request):
    return _save(request)


@company_member_required
@company_admin_required
def telegram_edit(request, pk):
    return _save(request, get_scoped_or_404(TelegramAccount, request.user, pk=pk))


@company_member_required
@company_admin_required
def telegram_login_page(request, pk):
    account = get_scoped_or_404(TelegramAccount, request.user, pk=pk)
    form = TelegramLoginForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        step = request.POST.get("step")
        try:
            if step == "send_code":
                telegram_login.send_code(request.user, account)
                messages.info(request, _("Telegram sent a code to the account's Telegram app."))
            elif step == "code":
                outcome = telegram_login.submit_code(
                    request.user, account, form.cleaned_data["code"]
                )
                if outcome == "connected":
                    messages.success(
                        request, _("%(name)s is logged in and connecting.") % {"name": account.name}
                    )
                    return redirect("telegram_accounts")
            elif step == "password":
                telegram_login.submit_password(request.user, account, form.cleaned_data["password"])
                messages.success(
                    request, _("%(name)s is logged in and connecting.") % {"name": account.name}
                )
                return redirect("telegram_accounts")
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            return redirect("telegram_login", pk=account.pk)
    return render(
        request,
        "channels_integrations/telegram_login.html",
        {"account": account, "form": form, "step": telegram_login.login_step(account)},
    )


@company_member_required
@company_admin_required
def telegram_delete(request, pk):
    account = get_scoped_or_404(TelegramAccount, request.user, pk=pk)
    if request.method == "POST":
        services.delete_channel(request.user, account)
        messages.success(
            request,
            _("Telegram account %(name)s and its conversations were deleted.")
            % {"name": account.name},
        )
        return redirect("telegram_accounts")
    return render(request, "channels_integrations/telegram_delete.html", {"account": account})


@company_member_required
@company_admin_required
@require_POST
def telegram_reconnect(request, pk):
    account = get_scoped_or_404(TelegramAccount, request.user, pk=pk)
    accounts.reconnect(request.user, account)
    messages.success(request, _("%(name)s is reconnecting.") % {"name": account.name})
    return redirect("telegram_accounts")
