"""Bot pages (included at "" by channels_integrations.page_urls). Rules are addressed by their
own id; each page looks its row up scoped to the member's company."""

from django.urls import path

from channels_integrations.views import bots

urlpatterns = [
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
]
