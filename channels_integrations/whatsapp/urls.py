"""WhatsApp pages: Settings → WhatsApp (numbers, sessions), bots and broadcasts (included at ""
from channels_integrations.page_urls)."""

from django.urls import path

from .views import bots, broadcasts, numbers

urlpatterns = [
    path("settings/whatsapp/", numbers.number_list, name="numbers"),
    path("settings/whatsapp/new/", numbers.number_create, name="number_create"),
    path("settings/whatsapp/<int:pk>/edit/", numbers.number_edit, name="number_edit"),
    path(
        "settings/whatsapp/<int:pk>/deactivate/",
        numbers.number_deactivate,
        name="number_deactivate",
    ),
    path(
        "settings/whatsapp/<int:pk>/reactivate/",
        numbers.number_reactivate,
        name="number_reactivate",
    ),
    path("settings/whatsapp/<int:pk>/delete/", numbers.number_delete, name="number_delete"),
    path(
        "settings/whatsapp/<int:pk>/templates/", numbers.number_templates, name="number_templates"
    ),
    path(
        "settings/whatsapp/<int:pk>/templates/<int:template_pk>/header/",
        numbers.number_template_header,
        name="number_template_header",
    ),
    path(
        "settings/whatsapp/<int:pk>/templates/sync/",
        numbers.number_templates_sync,
        name="number_templates_sync",
    ),
    path(
        "settings/whatsapp/<int:pk>/session/connect/",
        numbers.number_session_connect,
        name="number_session_connect",
    ),
    path(
        "settings/whatsapp/<int:pk>/session/logout/",
        numbers.number_session_logout,
        name="number_session_logout",
    ),
    path("settings/whatsapp/<int:number_pk>/bots/", bots.number_bots, name="number_bots"),
    path(
        "settings/whatsapp/<int:number_pk>/bots/new/",
        bots.number_bot_create,
        name="number_bot_create",
    ),
    path("settings/whatsapp/bots/<int:pk>/", bots.bot_detail, name="bot_detail"),
    path("settings/whatsapp/bots/<int:pk>/edit/", bots.bot_edit, name="bot_edit"),
    path("settings/whatsapp/bots/<int:pk>/toggle/", bots.bot_toggle, name="bot_toggle"),
    path("settings/whatsapp/bots/<int:pk>/delete/", bots.bot_delete, name="bot_delete"),
    path(
        "settings/whatsapp/bots/<int:pk>/rules/new/", bots.bot_rule_create, name="bot_rule_create"
    ),
    path("settings/whatsapp/bot-rules/<int:pk>/edit/", bots.botrule_edit, name="botrule_edit"),
    path(
        "settings/whatsapp/bot-rules/<int:pk>/delete/", bots.botrule_delete, name="botrule_delete"
    ),
    path("settings/whatsapp/bot-rules/<int:pk>/move/", bots.botrule_move, name="botrule_move"),
    path(
        "settings/whatsapp/bot-rules/<int:pk>/toggle/", bots.botrule_toggle, name="botrule_toggle"
    ),
    path("broadcasts/", broadcasts.broadcast_list, name="broadcasts"),
    path("broadcasts/new/", broadcasts.broadcast_create, name="broadcast_create"),
    path("broadcasts/<int:pk>/", broadcasts.broadcast_detail, name="broadcast_detail"),
    path("broadcasts/<int:pk>/cancel/", broadcasts.broadcast_cancel, name="broadcast_cancel"),
]
