"""What a channel folder may declare for the project to pick up, so that adding a channel
touches no shared file but `CHANNELS` (apps.py) and a migration: its models (`models.py`),
API routes (`api.ROUTES`), pages (`urls.urlpatterns`), webhooks (`urls.webhook_patterns`),
a settings link (`urls.SETTINGS_LINK`) and templates (`templates/` in the folder)."""

from importlib import import_module, util
from types import ModuleType

PACKAGE = "channels_integrations"


def channel_module(name: str, module: str) -> ModuleType | None:
    """`channels_integrations.<name>.<module>`, or None when the channel has none."""
    dotted = f"{PACKAGE}.{name}.{module}"
    if util.find_spec(dotted) is None:
        return None
    return import_module(dotted)


def declared(name: str, module: str, attribute: str, default=()):
    found = channel_module(name, module)
    return getattr(found, attribute, default) if found is not None else default
