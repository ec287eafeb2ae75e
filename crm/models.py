from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from phonenumber_field.modelfields import PhoneNumberField

from accounts.scoping import TenantManager


class Client(models.Model):
    """A person the company talks to, on any channel."""

    tenant_path = "company"

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="clients"
    )
    name = models.CharField(max_length=200, blank=True)
    phone = PhoneNumberField(blank=True, help_text="International format, e.g. +4915123456789")
    email = models.EmailField(blank=True)
    telegram_user_id = models.BigIntegerField(null=True, blank=True)
    telegram_username = models.CharField(max_length=64, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # One client per identity per company: what inbound messages link to.
            models.UniqueConstraint(
                fields=["company", "phone"], condition=~Q(phone=""), name="client_unique_phone"
            ),
            models.UniqueConstraint(
                fields=["company", "email"], condition=~Q(email=""), name="client_unique_email"
            ),
            models.UniqueConstraint(
                fields=["company", "telegram_user_id"], name="client_unique_telegram_user"
            ),
        ]
        # Inbox search also has trigram indexes on UPPER(name/phone/email): see migration 0002.
        indexes = [models.Index(fields=["company", "-created_at"])]

    def __str__(self):
        return self.name or str(self.phone) or self.email or self.telegram_username or f"#{self.pk}"

    def save(self, *args, **kwargs):
        self.email = (self.email or "").strip().lower()
        super().save(*args, **kwargs)

    def clean(self):
        self.email = (self.email or "").strip().lower()


class IdempotencyKey(models.Model):
    """The first answer to a request that carried an `Idempotency-Key` (crm.idempotency):
    the same user and key within a day get this answer again instead of a second effect."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # the request: method, path and body
    status_code = models.PositiveSmallIntegerField(null=True)
    body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique")
        ]

    def __str__(self):
        return self.key


class AuditedChange(models.Model):
    """Who made a change and when, for records of changes (ClientMerge, deals.StageChange).
    Abstract: each keeps its own table and columns; the person may be deleted later (SET NULL:
    the record stays). Their indexes stay on each model (partial on `actor`)."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class ClientMerge(AuditedChange):
    """A client merged into another: what the merged one was, who merged it, and what moved."""

    tenant_path = "company"

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    kept = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="merges")
    merged_client_id = models.BigIntegerField()  # gone: the snapshot below is what it was
    snapshot = models.JSONField(default=dict)
    conversations_moved = models.PositiveIntegerField(default=0)
    deals_moved = models.PositiveIntegerField(default=0)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["company", "-created_at"], name="clientmerge_company_idx"),
            models.Index(
                fields=["actor"], condition=Q(actor__isnull=False), name="clientmerge_actor_idx"
            ),
        ]

    def __str__(self):
        return f"#{self.merged_client_id} → #{self.kept_id}"
