from importlib import import_module

from django.apps import AppConfig

# The channels of this app, each a folder with a `channel.py` that registers it with
# messaging.channels. Adding a channel: a new folder, and its name here.
CHANNELS = ("whatsapp", "telegram", "email")


class ChannelsIntegrationsConfig(AppConfig):
    name = "channels_integrations"
    verbose_name = "Channels"

    def ready(self):
        for name in CHANNELS:
            import_module(f"{self.name}.{name}.channel")
        from . import bots, tasks  # noqa: F401  (the bots' receiver; registers the tasks)
        from .email import signals  # noqa: F401  (remembers sent Message-IDs)
