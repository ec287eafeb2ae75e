from django.urls import include, path

from channels_integrations.apps import CHANNELS
from channels_integrations.registry import channel_module
from channels_integrations.views import settings as settings_views

# Each channel folder's pages (`<name>/urls.py`), included at "".
urlpatterns = [
    path("settings/", settings_views.settings_page, name="settings"),
    *(
        path("", include(f"channels_integrations.{name}.urls"))
        for name in CHANNELS
        if channel_module(name, "urls") is not None
    ),
]
