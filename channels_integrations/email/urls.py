"""Settings → Email pages, and the HTML frame of an email in a conversation (included at ""
from channels_integrations.page_urls)."""

from django.urls import path
from django.utils.translation import gettext_lazy as _

from . import frames
from . import views as email

# The link on the settings page (channels_integrations.views.settings).
SETTINGS_LINK = (_("Email"), "email_accounts")

urlpatterns = [
    path("settings/email/", email.email_list, name="email_accounts"),
    path("settings/email/new/", email.email_create, name="email_create"),
    path("settings/email/<int:pk>/edit/", email.email_edit, name="email_edit"),
    path("settings/email/<int:pk>/test/", email.email_test, name="email_test"),
    path("settings/email/<int:pk>/delete/", email.email_delete, name="email_delete"),
    path(
        "inbox/<int:pk>/messages/<int:message_pk>/html/",
        frames.message_html,
        name="conversation_message_html",
    ),
    path(
        "settings/email/<int:pk>/quarantine/<int:item_pk>/retry/",
        email.email_quarantine_retry,
        name="email_quarantine_retry",
    ),
    path(
        "settings/email/<int:pk>/quarantine/<int:item_pk>/raw/",
        email.email_quarantine_raw,
        name="email_quarantine_raw",
    ),
]
