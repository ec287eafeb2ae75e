"""An export job: one archive (JSON + CSV + files) of the conversations of a channel source
(a WhatsApp number, a Telegram account, a mailbox, a Meta page) or of a client, built in the
background (exports.tasks.build_export) and kept for EXPORT_KEEP_DAYS."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.scoping import TenantManager

CLIENT = "client"  # `kind` of a client's export; any other kind is a channel's platform


class ExportJob(models.Model):
    tenant_path = "company"

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")  # done, and its file deleted after the keep period

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    # What is exported: a platform (its source row's id in object_id) or "client". No foreign
    # key: the point is to delete the number or client afterwards and keep the archive.
    kind = models.CharField(max_length=10)
    object_id = models.BigIntegerField()
    subject_name = models.CharField(max_length=300)  # as it was named when asked for
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    error = models.CharField(max_length=500, blank=True)  # a sentence, when failed
    conversations_done = models.PositiveIntegerField(default=0)
    conversations_total = models.PositiveIntegerField(default=0)
    messages_done = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    file = models.CharField(max_length=255, blank=True)  # the archive's name in default storage
    size = models.PositiveBigIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with each progress update: a running job whose heartbeat is older than
    # EXPORT_STALE_SECONDS lost its worker (the sweeper fails it in words).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["company", "kind", "object_id"], name="export_subject_idx"),
            # What the sweeper scans: unfinished jobs, and done ones by expiry.
            models.Index(
                fields=["state"],
                condition=models.Q(state__in=["queued", "running"]),
                name="export_active_idx",
            ),
            models.Index(
                fields=["expires_at"], condition=models.Q(state="done"), name="export_expiry_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=["queued", "running", "done", "failed", "expired"]),
                name="export_state_valid",
            )
        ]

    def __str__(self):
        return f"Export {self.pk} of {self.subject_name}"

    @property
    def is_active(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        if not self.conversations_total:
            return 0
        return min(100, 100 * self.conversations_done // self.conversations_total)

    @property
    def download_name(self) -> str:
        return f"switchboard-export-{self.kind}-{self.object_id}-{self.pk}.zip"
