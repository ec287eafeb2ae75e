"""The settings page: the company's channels (read-only here) and, for admins, its members."""

from django.shortcuts import render

from accounts.views import company_member_required
from channels_integrations import selectors


@company_member_required
def settings_page(request):
    user = request.user
    return render(
        request,
        "channels_integrations/settings.html",
        {
            "numbers": selectors.whatsapp_numbers(user),
            "telegram_accounts": selectors.telegram_accounts(user),
            "email_accounts": selectors.email_accounts(user),
            # Only company admins see who the members are.
            "members": user.company.members.order_by("username") if user.is_company_admin else None,
        },
    )
