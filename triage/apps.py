from django.apps import AppConfig


class TriageConfig(AppConfig):
    """Sorting the inbox: labels (on conversations and clients), saved views, bulk actions."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "triage"
    verbose_name = "Triage"
