"""The settings page: the company's channels (read-only here) and, for admins, its members."""

from django.shortcuts import render

from accounts.views import company_member_required
from channels_integrations import selectors
from channels_integrations.apps import CHANNELS
from channels_integrations.registry import declared


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
            # Channels with a settings page of their own (`<name>/urls.py`, SETTINGS_LINK).
            "channel_links": [
                link for name in CHANNELS if (link := declared(name, "urls", "SETTINGS_LINK", None))
            ],
            # Only company admins see who the members are.
            "members": user.company.members.order_by("username") if user.is_company_admin else None,
        },
    )
