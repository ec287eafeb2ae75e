"""Settings → Telegram pages (included at "" from channels_integrations.page_urls)."""

from django.urls import path
from django.utils.translation import gettext_lazy as _

from . import views as telegram

# The link on the settings page (channels_integrations.views.settings).
SETTINGS_LINK = (_("Telegram"), "telegram_accounts")

urlpatterns = [
    path("settings/telegram/", telegram.telegram_list, name="telegram_accounts"),
    path("settings/telegram/new/", telegram.telegram_create, name="telegram_create"),
    path("settings/telegram/<int:pk>/edit/", telegram.telegram_edit, name="telegram_edit"),
    path("settings/telegram/<int:pk>/login/", telegram.telegram_login_page, name="telegram_login"),
    path(
        "settings/telegram/<int:pk>/reconnect/",
        telegram.telegram_reconnect,
        name="telegram_reconnect",
    ),
    path("settings/telegram/<int:pk>/delete/", telegram.telegram_delete, name="telegram_delete"),
]
