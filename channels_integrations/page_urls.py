from django.urls import include, path

from channels_integrations.views import settings as settings_views

urlpatterns = [
    path("settings/", settings_views.settings_page, name="settings"),
    path("", include("channels_integrations.whatsapp.urls")),
    path("", include("channels_integrations.telegram.urls")),
    path("", include("channels_integrations.email.urls")),
]
