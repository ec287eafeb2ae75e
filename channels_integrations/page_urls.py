from django.urls import include, path

from channels_integrations.views import settings as settings_views

urlpatterns = [
    path("settings/", settings_views.settings_page, name="settings"),
    path("", include("channels_integrations.numbers_urls")),
    path("", include("channels_integrations.bots_urls")),
    path("", include("channels_integrations.broadcasts_urls")),
    path("", include("channels_integrations.telegram_urls")),
    path("", include("channels_integrations.email_urls")),
]
