"""Settings → Sandbox: the customer's side of the company's test channel (included at "" from
channels_integrations.page_urls)."""

from django.urls import path
from django.utils.translation import gettext_lazy as _

from . import views

# The link on the settings page (channels_integrations.views.settings).
SETTINGS_LINK = (_("Sandbox (test channel)"), "sandbox")

urlpatterns = [
    path("settings/sandbox/", views.sandbox_page, name="sandbox"),
    path("settings/sandbox/thread/", views.sandbox_thread, name="sandbox_thread"),
    path("settings/sandbox/write/", views.sandbox_write, name="sandbox_write"),
    path(
        "settings/sandbox/messages/<int:pk>/<str:status>/",
        views.sandbox_mark,
        name="sandbox_mark",
    ),
    path(
        "settings/sandbox/broadcasts/<int:pk>/<str:status>/",
        views.sandbox_mark_broadcast,
        name="sandbox_mark_broadcast",
    ),
    path("settings/sandbox/bot/rules/", views.sandbox_bot_rule, name="sandbox_bot_rule"),
    path("settings/sandbox/broadcast/", views.sandbox_broadcast, name="sandbox_broadcast"),
]
