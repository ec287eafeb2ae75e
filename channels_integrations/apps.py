from importlib import import_module

from django.apps import AppConfig

# The channels of this app, each a folder with a `channel.py` that registers it with
# messaging.channels, an `accounts.py` that registers how admins edit its account, and a
# `tasks.py` / `admin.py` when it has tasks / platform-admin pages. Adding a channel: a new
# folder, and its name here.
CHANNELS = ("whatsapp", "telegram", "email", "meta", "sandbox")


class ChannelsIntegrationsConfig(AppConfig):
    name = "channels_integrations"
    verbose_name = "Channels"

    def ready(self):
        for name in CHANNELS:
            import_module(f"{self.name}.{name}.channel")
            import_module(f"{self.name}.{name}.accounts")
            # Its tasks in every process (they are queued by name), its admin pages.
            for optional in ("tasks", "admin"):
                try:
                    import_module(f"{self.name}.{name}.{optional}")
                except ModuleNotFoundError as missing:
                    if missing.name != f"{self.name}.{name}.{optional}":
                        raise
        from . import (
            status,  # noqa: F401  (how connection rows show their status)
            tasks,  # noqa: F401  (the shared ones)
        )
        from .email import signals  # noqa: F401  (remembers sent Message-IDs)
        from .whatsapp import bot_receivers  # noqa: F401  (bots answer inbound messages)
