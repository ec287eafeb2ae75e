import re
import uuid

import regex
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from phonenumber_field.modelfields import PhoneNumberField

from accounts.scoping import TenantManager
from crm.fields import SecretField
from teams.models import distribution_field, team_field

# ---------------------------------------------------------------- WhatsApp


class WhatsAppNumber(models.Model):
    tenant_path = "company"

    class Provider(models.TextChoices):
        CLOUD = "cloud", _("WhatsApp Cloud API")
        WEB = "web", _("WhatsApp Web (QR-linked)")

    class Status(models.TextChoices):
        DISCONNECTED = "disconnected", _("Disconnected")
        CONNECTING = "connecting", _("Connecting")
        CONNECTED = "connected", _("Connected")
        ERROR = "error", _("Error")
        DELETING = "deleting", _("Being deleted")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)  # webhook URL
    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="whatsapp_numbers"
    )
    phone = PhoneNumberField()
    display_name = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=10, choices=Provider.choices, default=Provider.CLOUD)
    is_active = models.BooleanField(default=True)
    # Lead distribution (teams): the team this row's conversations go to, and how.
    team = team_field()
    distribution = distribution_field()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DISCONNECTED)
    last_error = models.TextField(blank=True)
    # Cloud API credentials (provider "cloud").
    cloud_phone_number_id = models.CharField(max_length=64, blank=True)
    # The WhatsApp Business Account (WABA) id: where its message templates are read from.
    cloud_business_account_id = models.CharField(
        max_length=64,
        blank=True,
        validators=[
            RegexValidator(r"^\d+$", _("The business account id is digits only (from Meta)."))
        ],
    )
    cloud_access_token = SecretField()
    cloud_app_secret = SecretField()
    cloud_verify_token = SecretField()
    # The paired device (provider "web"); its keys live in neonize's tables, not here.
    web_jid = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["phone"]
        verbose_name = "WhatsApp number"
        constraints = [
            models.UniqueConstraint(
                fields=["company", "phone"], name="whatsapp_number_unique_phone"
            )
        ]

    def __str__(self):
        return f"{self.display_name} {self.phone}".strip()


def _one_source(name: str) -> models.CheckConstraint:
    """A bot or broadcast belongs to exactly one source: a WhatsApp number or the sandbox."""
    return models.CheckConstraint(
        condition=models.Q(number__isnull=False, sandbox__isnull=True)
        | models.Q(number__isnull=True, sandbox__isnull=False),
        name=name,
    )


class NumberOrSandboxSource(models.Model):
    """What bots and broadcasts belong to: a WhatsApp number, or the company's sandbox (the
    test channel); exactly one of the two (each model's check constraint)."""

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="+")
    number = models.ForeignKey(
        WhatsAppNumber,
        on_delete=models.CASCADE,
        related_name="%(class)ss",
        null=True,
        blank=True,
    )
    sandbox = models.ForeignKey(
        "channels_integrations.SandboxInbox",
        on_delete=models.CASCADE,
        related_name="%(class)ss",
        null=True,
        blank=True,
    )

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.company_id is None and self.source is not None:
            self.company_id = self.source.company_id  # always its source's company
        super().save(*args, **kwargs)

    @property
    def source(self):
        return self.number if self.number_id else self.sandbox


class Bot(NumberOrSandboxSource):
    tenant_path = "company"

    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    greeting = models.TextField(blank=True, help_text="Sent once, on a client's first message.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [_one_source("bot_one_source")]

    def __str__(self):
        return self.name


class BotRule(models.Model):
    tenant_path = "bot__company"

    class MatchType(models.TextChoices):
        KEYWORD = "keyword", _("Keyword")
        REGEX = "regex", _("Regular expression")

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveIntegerField(default=0)
    match_type = models.CharField(
        max_length=10, choices=MatchType.choices, default=MatchType.KEYWORD
    )
    trigger = models.CharField(max_length=500)
    reply_text = models.TextField(max_length=4096)
    is_active = models.BooleanField(default=True)

    objects = TenantManager()

    class Meta:
        ordering = ["bot", "position", "id"]

    def __str__(self):
        return f"{self.trigger} → {self.reply_text[:30]}"

    def clean(self):
        if self.match_type == self.MatchType.REGEX and (error := regex_error(self.trigger)):
            raise ValidationError({"trigger": error})


SLOW_PROBE_SECONDS = 0.02


def regex_error(trigger: str) -> str | None:
    """Why a bot's regular expression cannot be saved (None: it can)."""
    try:
        pattern = regex.compile(trigger, regex.IGNORECASE)
    except regex.error as exc:
        return f"Not a valid regular expression: {exc}"
    if pattern_is_slow(pattern, trigger):
        return (
            "This pattern can take too long on some messages (a repetition inside a "
            "repetition, such as (a|aa)+); simplify it."
        )
    return None


def pattern_is_slow(pattern, trigger: str) -> bool:
    """Whether a bot's pattern backtracks for long on plain texts made of its own characters
    (the shape of catastrophic patterns: a run of what they repeat, then a mismatch)."""
    characters = {char for char in trigger if char.isalnum() or char == " "} | {"a", "0", " "}
    probes = [char * 40 + end for char in sorted(characters) for end in ("!", "§")]
    words = [word for word in re.split(r"\W+", trigger) if word]
    probes += [" ".join(words * 12) + " !", "".join(words * 12) + "!"]
    for probe in probes:
        try:
            pattern.search(probe, timeout=SLOW_PROBE_SECONDS)
        except TimeoutError:
            return True
    return False


class WhatsAppTemplate(models.Model):
    """A message template of a Cloud number's business account, as last synced from Meta
    (channels_integrations.whatsapp.templates). Only approved ones are offered."""

    tenant_path = "number__company"

    number = models.ForeignKey(WhatsAppNumber, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=512)
    language = models.CharField(max_length=20)
    category = models.CharField(max_length=30, blank=True)
    status = models.CharField(max_length=30, blank=True)  # APPROVED, PENDING, REJECTED, ...
    components = models.JSONField(default=list, blank=True)  # as Meta describes them
    # Placeholders ({{1}}, {{2}} ...) per component we can fill: {"header": 1, "body": 2}.
    variables = models.JSONField(default=dict, blank=True)
    # False when the template needs what we cannot send (a location header, a button URL
    # variable, named parameters): listed, never offered.
    supported = models.BooleanField(default=True)
    # A media header ("image", "video", "document"; "" for none or text): the file an admin
    # chose for it (Settings → templates) goes with every send; offered only once it is set.
    header_format = models.CharField(max_length=10, blank=True)
    header_file = models.FileField(upload_to="template-headers/%Y/%m/", max_length=255, blank=True)
    header_content_type = models.CharField(max_length=255, blank=True)
    synced_at = models.DateTimeField()

    objects = TenantManager()

    class Meta:
        ordering = ["name", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["number", "name", "language"], name="whatsapp_template_unique"
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.language})"

    @property
    def is_approved(self) -> bool:
        return self.status == "APPROVED"

    @property
    def is_offered(self) -> bool:
        """Approved, sendable, and a media header's file set (templates.OFFERABLE)."""
        return (
            self.is_approved
            and self.supported
            and (not self.header_format or bool(self.header_file))
        )


class Broadcast(NumberOrSandboxSource):
    tenant_path = "company"

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        SENDING = "sending", _("Sending")
        COMPLETED = "completed", _("Completed")
        CANCELLED = "cancelled", _("Cancelled")
        FAILED = "failed", _("Failed")

    name = models.CharField(max_length=200, blank=True)
    text = models.TextField(max_length=4096)
    # A template broadcast (Cloud numbers): its name and language, and each variable as
    # {"kind": "text", "text": ...} or {"kind": "client_name", "text": fallback} per component.
    template_name = models.CharField(max_length=512, blank=True)
    template_language = models.CharField(max_length=20, blank=True)
    template_variables = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "scheduled_at"])]
        constraints = [_one_source("broadcast_one_source")]

    def __str__(self):
        return self.name or f"Broadcast #{self.pk}"


class BroadcastRecipient(models.Model):
    tenant_path = "broadcast__company"

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")
        FAILED = "failed", _("Failed")
        UNKNOWN = "unknown", _("Unknown (not retried)")
        CANCELLED = "cancelled", _("Cancelled")

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="recipients")
    phone = PhoneNumberField()
    client = models.ForeignKey(
        "crm.Client", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    provider_message_id = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Set by the conditional UPDATE that claims a pending recipient right before its send.
    # Pending + claimed = in flight; a claim older than a grace period with no outcome (the
    # worker died mid-send) becomes `unknown` and is never retried automatically.
    claimed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    send_attempts = models.PositiveSmallIntegerField(default=0, db_default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["broadcast", "phone"], name="broadcast_recipient_unique"
            )
        ]
        indexes = [
            models.Index(fields=["broadcast", "status"]),
            # Cloud status webhooks find a broadcast's send by its wamid.
            models.Index(
                fields=["provider_message_id"],
                name="broadcast_recipient_wamid",
                condition=~models.Q(provider_message_id=""),
            ),
        ]

    def __str__(self):
        return str(self.phone)


class WhatsAppSession(models.Model):
    """The live connection of a number, as the supervisor sees it."""

    tenant_path = "number__company"

    class Status(models.TextChoices):
        STOPPED = "stopped", _("Stopped")
        STARTING = "starting", _("Starting")
        QR = "qr", _("Waiting for QR scan")
        CONNECTED = "connected", _("Connected")
        RECONNECTING = "reconnecting", _("Reconnecting")
        LOGGED_OUT = "logged_out", _("Logged out (scan again)")
        QR_TIMEOUT = "qr_timeout", _("QR not scanned in time")
        FAILED = "failed", _("Failed (admin must restart)")

    number = models.OneToOneField(WhatsAppNumber, on_delete=models.CASCADE, related_name="session")
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.STOPPED)
    last_connected_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    reconnect_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # backing off until then
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Fencing: the epoch of the lease whose holder may write this row (a holder that lost its
    # lease carries an older epoch, and its writes match no row).
    lease_epoch = models.PositiveBigIntegerField(default=0, editable=False)
    holder = models.CharField(max_length=200, blank=True, editable=False)  # worker name, pid
    updated_at = models.DateTimeField(auto_now=True)

    # The supervisor keeps these running; the others wait for an admin (or are stopped).
    WANTED = (Status.STARTING, Status.QR, Status.CONNECTED, Status.RECONNECTING)

    objects = TenantManager()

    class Meta:
        verbose_name = "WhatsApp session"

    def __str__(self):
        return f"Session of {self.number}"


# ---------------------------------------------------------------- Telegram

api_hash_validator = RegexValidator(
    r"^[0-9a-fA-F]{32}$", "api_hash must be 32 hexadecimal characters."
)


class TelegramAccount(models.Model):
    """A Telegram user account (MTProto via Telethon), not a bot."""

    tenant_path = "company"

    class Status(models.TextChoices):
        NEW = "new", _("Not connected yet")
        CONNECTED = "connected", _("Connected")
        RECONNECTING = "reconnecting", _("Reconnecting")
        ERROR = "error", _("Error (an admin must reconnect it)")
        LOGGED_OUT = "logged_out", _("Logged out (log in again)")

    # The supervisor keeps these running (when a session is stored); the others wait.
    WANTED = (Status.NEW, Status.CONNECTED, Status.RECONNECTING)

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="telegram_accounts"
    )
    # Lead distribution (teams): the team this row's conversations go to, and how.
    team = team_field()
    distribution = distribution_field()
    name = models.CharField(max_length=100)
    phone = PhoneNumberField()
    api_id = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(2**31 - 1)]
    )
    api_hash = SecretField(validators=[api_hash_validator])
    session_string = SecretField()
    # A login in progress (send code -> code -> password): its session and code hash.
    login_state = SecretField()
    is_active = models.BooleanField(default=True)
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.NEW)
    last_event_at = models.DateTimeField(null=True, blank=True)
    messages_received = models.PositiveBigIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # The listener, as the supervisor sees it (channels_integrations.connections).
    last_connected_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    reconnect_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_epoch = models.PositiveBigIntegerField(default=0, editable=False)
    holder = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "phone"], name="telegram_account_unique_phone"
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.phone})"


# ---------------------------------------------------------------- Email


class EmailAccount(models.Model):
    tenant_path = "company"

    class SmtpSecurity(models.TextChoices):
        SSL = "ssl", _("SSL/TLS")
        STARTTLS = "starttls", _("STARTTLS")
        NONE = "none", _("None (loopback only)")

    class Status(models.TextChoices):
        NEW = "new", _("Not polled yet")
        OK = "ok", _("OK")
        WARNING = "warning", _("Polling; some mails not imported")
        ERROR = "error", _("Error (backing off)")

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="email_accounts"
    )
    # Lead distribution (teams): the team this row's conversations go to, and how.
    team = team_field()
    distribution = distribution_field()
    owner = models.ForeignKey(
        "accounts.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="email_accounts",
    )
    address = models.EmailField()
    display_name = models.CharField(max_length=100, blank=True)
    imap_host = models.CharField(max_length=255)
    imap_port = models.PositiveIntegerField(default=993, validators=[MaxValueValidator(65535)])
    imap_ssl = models.BooleanField(default=True)
    smtp_host = models.CharField(max_length=255)
    smtp_port = models.PositiveIntegerField(default=465, validators=[MaxValueValidator(65535)])
    smtp_security = models.CharField(
        max_length=10, choices=SmtpSecurity.choices, default=SmtpSecurity.SSL
    )
    username = models.CharField(max_length=255)
    password = SecretField()
    is_active = models.BooleanField(default=True)
    poll_interval_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(10)]
    )
    first_sync_days = models.PositiveIntegerField(default=30)
    # IMAP IDLE for near-instant delivery (where the server offers it); polling stays on.
    use_idle = models.BooleanField(default=False)
    # Below every reply from this mailbox, after a "-- " line (plain text).
    signature = models.TextField(max_length=2000, blank=True)
    # IMAP sync state: incremental by UID within one UIDVALIDITY.
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True)  # later while backing off
    consecutive_failures = models.PositiveIntegerField(default=0)
    # The IDLE listener's connection state (channels_integrations.connections).
    lease_epoch = models.PositiveBigIntegerField(default=0, editable=False)
    holder = models.CharField(max_length=200, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    messages_imported = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        ordering = ["address"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "address"], name="email_account_unique_address"
            )
        ]

    def __str__(self):
        return self.address


class EmailMessageRecord(models.Model):
    """Every Message-ID an email account has seen (imported or sent): dedupe across polls,
    folders and UIDVALIDITY changes, threading by References / In-Reply-To, and memory of
    what was imported once — a conversation an agent deleted never comes back (its records
    stay, with no conversation)."""

    tenant_path = "account__company"

    class Direction(models.TextChoices):
        INBOUND = "in", _("Imported")
        OUTBOUND = "out", _("Sent")

    account = models.ForeignKey(EmailAccount, on_delete=models.CASCADE, related_name="records")
    message_id = models.CharField(max_length=998)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    conversation = models.ForeignKey(
        "messaging.Conversation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="email_records",
    )
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    uid = models.BigIntegerField(null=True, blank=True)
    # Threading: Outlook's Thread-Index root, and the Message-IDs this mail referred to
    # (In-Reply-To and References), so an original that arrives after its replies finds them.
    thread_root = models.CharField(max_length=64, blank=True, default="")
    refs = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "message_id"], name="email_record_unique_message_id"
            )
        ]
        indexes = [
            models.Index(
                fields=["account", "thread_root"],
                condition=~models.Q(thread_root=""),
                name="email_record_thread_root",
            ),
            GinIndex(fields=["refs"], name="email_record_refs"),
        ]

    def __str__(self):
        return self.message_id


class EmailQuarantine(models.Model):
    """A mail that could not be stored: kept with its UID, Message-ID, size, the reason and
    its raw bytes; later polls pass it by, an admin retries it or downloads it."""

    tenant_path = "account__company"

    account = models.ForeignKey(EmailAccount, on_delete=models.CASCADE, related_name="quarantined")
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    uid = models.BigIntegerField()
    message_id = models.CharField(max_length=998, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    reason = models.TextField()
    raw = models.BinaryField()
    # The server's INTERNALDATE: a retry dates the mail as the first import would have.
    arrived_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "uidvalidity", "uid"], name="email_quarantine_unique_uid"
            )
        ]

    def __str__(self):
        return f"UID {self.uid} ({self.message_id})"


# ---------------------------------------------------------------- channels' own models


# A channel folder may keep its models in its own `models.py` (channels_integrations/<name>/):
# they belong to this app and its migrations, and are loaded here, with the app's models.
def _load_channel_models() -> None:
    from .apps import CHANNELS
    from .registry import channel_module

    for name in CHANNELS:
        channel_module(name, "models")


_load_channel_models()
