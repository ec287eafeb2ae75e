from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from accounts.scoping import TenantManager


class Label(models.Model):
    """A company's tag for conversations and clients. The colour is one of a fixed palette
    of accessible pairs (CSS classes `label-<colour>` in app.css), never free CSS."""

    tenant_path = "company"

    class Color(models.TextChoices):
        GRAY = "gray", _("Gray")
        RED = "red", _("Red")
        ORANGE = "orange", _("Orange")
        YELLOW = "yellow", _("Yellow")
        GREEN = "green", _("Green")
        TEAL = "teal", _("Teal")
        BLUE = "blue", _("Blue")
        PURPLE = "purple", _("Purple")
        PINK = "pink", _("Pink")

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="labels", db_index=False
    )
    name = models.CharField(max_length=50)
    color = models.CharField(max_length=10, choices=Color.choices, default=Color.BLUE)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        ordering = [Lower("name"), "id"]
        constraints = [
            # Also the index that lists a company's labels (it leads with the company).
            models.UniqueConstraint("company", Lower("name"), name="label_unique_name"),
        ]

    def __str__(self):
        return self.name


class ConversationLabel(models.Model):
    tenant_path = "label__company"

    conversation = models.ForeignKey(
        "messaging.Conversation",
        on_delete=models.CASCADE,
        related_name="label_links",
        db_index=False,  # the unique constraint leads with it
    )
    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="conversation_links")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "label"], name="conversation_label_unique"
            )
        ]

    def __str__(self):
        return f"{self.label_id} on conversation {self.conversation_id}"


class ClientLabel(models.Model):
    tenant_path = "label__company"

    client = models.ForeignKey(
        "crm.Client", on_delete=models.CASCADE, related_name="label_links", db_index=False
    )
    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="client_links")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "label"], name="client_label_unique")
        ]

    def __str__(self):
        return f"{self.label_id} on client {self.client_id}"


class SavedView(models.Model):
    """A named set of inbox filters: the owner's own, or shared with the whole company.
    `filters` holds only the keys of triage.filters.VIEW_FILTERS, already validated."""

    tenant_path = "company"

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="saved_views", db_index=False
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    name = models.CharField(max_length=60)
    shared = models.BooleanField(default=False)
    filters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["company", "shared"], name="savedview_company_idx")]

    def __str__(self):
        return self.name

    @property
    def query(self) -> str:
        """The inbox query string of this view's filters."""
        from .filters import canonical_query

        return canonical_query(self.filters)
