from django.db import models
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _


class Source(models.TextChoices):
    """Who a delivery was addressed to: the channel and the kind of row `source_id` names."""

    WHATSAPP_CLOUD = "whatsapp_cloud", _("WhatsApp Cloud number")
    MESSENGER = "messenger", _("Messenger Page")
    INSTAGRAM = "instagram", _("Instagram account")


class Delivery(models.Model):
    """One signed webhook delivery, its body exactly as it came. Written once by the webhook
    view (nothing parsed there); deleted by the worker once ingested; a delivery that keeps
    failing stays, parked, with its reason."""

    id = models.BigAutoField(primary_key=True)
    # No constraint in PostgreSQL: its check at every commit locked the company's row (FOR KEY
    # SHARE) from every web process's group INSERT at once: 36 -> 29 µs of PostgreSQL's CPU
    # per delivery with two flushers (README, "The web tier and webhooks"). Deleting a company
    # deletes its deliveries by a trigger (migration 0002), as ON DELETE CASCADE would; the
    # company comes from a verified target, and a delivery whose number is deleted meanwhile
    # is dropped by the worker.
    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    # The number's or account's id. Not a foreign key: deleting a number must not wait on its
    # inbox, and a delivery for a source that is gone is dropped by the worker.
    source_id = models.BigIntegerField()
    body = models.BinaryField()
    received_at = models.DateTimeField(db_default=Now())
    attempts = models.PositiveSmallIntegerField(default=0)
    # After a failure: not before this time (backoff); parked: given up on, kept for the admin.
    retry_at = models.DateTimeField(null=True, blank=True)
    parked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            # The worker reads a source's waiting deliveries in arrival order.
            models.Index(
                fields=["source", "source_id", "id"],
                condition=models.Q(parked_at__isnull=True),
                name="webhook_inbox_waiting",
            ),
        ]

    def __str__(self):
        return f"{self.source} {self.source_id} #{self.pk}"
