from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "teams"
    verbose_name = "Teams, members and lead distribution"

    def ready(self):
        from . import receivers  # noqa: F401  (distribution, first responder, away replies)
