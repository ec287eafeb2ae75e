"""Settings → Instagram & Messenger pages (included at "" from channels_integrations.page_urls)
and the webhook (`webhook_patterns`, added to the project's URLs by crm.urls)."""

from django.urls import path
from django.utils.translation import gettext_lazy as _

from . import views
from .webhooks import meta_webhook

# The link on the settings page (channels_integrations.views.settings).
SETTINGS_LINK = (_("Instagram & Messenger"), "meta_accounts")

urlpatterns = [
    path("settings/meta/", views.meta_list, name="meta_accounts"),
    path("settings/meta/pages/new/", views.page_create, name="meta_page_create"),
    path("settings/meta/pages/<int:pk>/edit/", views.page_edit, name="meta_page_edit"),
    path("settings/meta/pages/<int:pk>/test/", views.page_test, name="meta_page_test"),
    path("settings/meta/pages/<int:pk>/delete/", views.page_delete, name="meta_page_delete"),
    path("settings/meta/instagram/new/", views.instagram_create, name="meta_instagram_create"),
    path(
        "settings/meta/instagram/<int:pk>/edit/", views.instagram_edit, name="meta_instagram_edit"
    ),
    path(
        "settings/meta/instagram/<int:pk>/test/", views.instagram_test, name="meta_instagram_test"
    ),
    path(
        "settings/meta/instagram/<int:pk>/delete/",
        views.instagram_delete,
        name="meta_instagram_delete",
    ),
]

webhook_patterns = [
    path("webhooks/meta/<uuid:account_uuid>/", meta_webhook, name="meta-webhook"),
]
