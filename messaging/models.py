from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.scoping import TenantManager

from . import channels


class ConversationManager(TenantManager):
    def of_source(self, source):
        """The conversations that came through `source` (a number, an account, a mailbox)."""
        return self.filter(platform=channels.for_source(source).platform, source_id=source.pk)


class Conversation(models.Model):
    tenant_path = "company"
    visibility_path = ""  # accounts.scoping: agents may see only their own

    class Status(models.TextChoices):
        """open: needs us; pending: waiting for the customer; snoozed: hidden until
        `snoozed_until` (or, when that is empty, until the customer's next message; any
        inbound message wakes it); closed: done (a reply of an agent reopens it)."""

        OPEN = "open", _("Open")
        PENDING = "pending", _("Pending")
        SNOOZED = "snoozed", _("Snoozed")
        CLOSED = "closed", _("Closed")

    # Every index is paid on each inbound message (a bump moves last_message_at, so the
    # update is never HOT): no FK index where a composite or unique index leads with it.
    company = models.ForeignKey(
        "accounts.Company",
        on_delete=models.CASCADE,
        related_name="conversations",
        db_index=False,  # conv_inbox_idx leads with it
    )
    # The channel (messaging.channels) and its source row: a number, an account, a mailbox.
    # No foreign key (a new channel needs no column here); the source table's trigger deletes
    # its conversations with it (messaging.db.conversations_follow).
    platform = models.CharField(max_length=10, choices=channels.platform_choices)
    source_id = models.BigIntegerField()
    external_thread_id = models.CharField(max_length=255)
    client = models.ForeignKey(
        "crm.Client",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
        db_index=False,  # a partial index (below) serves SET NULL when a user goes
    )
    subject = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # Snoozed only: when beat wakes it (NULL: when the customer next writes).
    snoozed_until = models.DateTimeField(null=True, blank=True)
    # Never NULL (cursor pagination and the inbox order need a value): creation time until
    # the first message sets it.
    last_message_at = models.DateTimeField(default=timezone.now)
    last_message_preview = models.CharField(max_length=200, blank=True)
    # When the client last wrote (the newest inbound message's time, moved forward by the
    # ingest statement): a channel's reply window (WhatsApp Cloud: 24 h) is computed from it.
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    unread_count = models.PositiveIntegerField(default=0)
    # When an agent last closed it (reports: resolution time); None while never closed.
    closed_at = models.DateTimeField(null=True, blank=True)
    # The first reply an agent (not a bot) wrote after the client wrote (reports: first
    # response time), set by the same UPDATE that bumps the conversation for that reply.
    first_response_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConversationManager()

    class Meta:
        ordering = ["-last_message_at", "-id"]
        constraints = [
            # One conversation per thread of a source; also finds a source's conversations.
            models.UniqueConstraint(
                fields=["platform", "source_id", "external_thread_id"],
                name="conversation_unique_thread",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["open", "pending", "snoozed", "closed"]),
                name="conversation_status_valid",
            ),
            # A wake-up time only on a snoozed conversation.
            models.CheckConstraint(
                condition=models.Q(status="snoozed") | models.Q(snoozed_until__isnull=True),
                name="conversation_snooze_only_snoozed",
            ),
        ]
        indexes = [
            models.Index(fields=["company", "-last_message_at", "-id"], name="conv_inbox_idx"),
            models.Index(
                fields=["assignee"],
                condition=models.Q(assignee__isnull=False),
                name="conv_assignee_idx",
            ),
            models.Index(
                fields=["company", "assignee", "-last_message_at", "-id"],
                name="conv_inbox_assignee_idx",
            ),
            models.Index(
                fields=["company", "status", "-last_message_at", "-id"],
                name="conv_inbox_status_idx",
            ),
            # What the wake-up task scans: snoozed with a time (tiny, skipped by ingest).
            models.Index(
                fields=["snoozed_until"],
                condition=models.Q(status="snoozed", snoozed_until__isnull=False),
                name="conv_snoozed_idx",
            ),
        ]

    def __str__(self):
        return f"{self.get_platform_display()} · {self.client or self.external_thread_id}"

    @property
    def capabilities(self) -> "channels.Capabilities":
        """What this conversation's channel can do (pages ask it instead of naming platforms)."""
        return channels.get(self.platform).capabilities

    @property
    def source(self):
        """The number, account or mailbox this conversation came through (loaded once)."""
        cached = self.__dict__.get("_source")
        if cached is None or cached.pk != self.source_id:
            model = channels.get(self.platform).source_model
            cached = self.__dict__["_source"] = model.objects.filter(pk=self.source_id).first()
        return cached

    @source.setter
    def source(self, value) -> None:
        self.__dict__["_source"] = value
        if value is not None:
            self.platform = channels.for_source(value).platform
            self.source_id = value.pk


class Message(models.Model):
    tenant_path = "conversation__company"
    visibility_path = "conversation__"

    class Direction(models.TextChoices):
        INBOUND = "in", _("Inbound")
        OUTBOUND = "out", _("Outbound")
        # A private note of an agent (messaging.services.notes): shown in the thread, never
        # sent, never unread, never the conversation's preview.
        NOTE = "note", _("Private note")

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")
        FAILED = "failed", _("Failed")

    # Inbound messages have no author and no bot: partial indexes (below) skip them. The
    # conversation keeps its narrow FK index although two wider ones lead with it: counting a
    # number's million messages (the deletion preview) is an index-only scan of it.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    direction = models.CharField(max_length=4, choices=Direction.choices)
    # The provider's id; NULL until an outbound message is accepted by the provider.
    external_id = models.CharField(max_length=255, null=True, blank=True)
    sender_name = models.CharField(max_length=200, blank=True)
    sender_address = models.CharField(max_length=255, blank=True)  # phone, email or Telegram id
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="authored_messages",
        db_index=False,
    )
    bot = models.ForeignKey(
        "channels_integrations.Bot",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
        db_index=False,
    )
    body = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Set when a send task takes the message, so a second run of the task never sends it again.
    send_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Outbox (messaging.sending): attempts so far, and when a queued message may next be
    # tried (the sweeper re-queues one still unclaimed well past it: its task was lost).
    send_attempts = models.PositiveSmallIntegerField(default=0, db_default=0, editable=False)
    next_attempt_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "external_id"], name="message_unique_external_id"
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "-created_at", "-id"], name="msg_history_idx"),
            # Reports count messages by time: a BRIN index (a few pages for millions of rows,
            # next to nothing per insert since rows arrive in time order) finds a period.
            BrinIndex(fields=["created_at"], name="msg_created_brin"),
            models.Index(
                fields=["author"], condition=models.Q(author__isnull=False), name="msg_author_idx"
            ),
            models.Index(fields=["bot"], condition=models.Q(bot__isnull=False), name="msg_bot_idx"),
            # Only queued messages: what the outbox sweeper scans (tiny, skipped by ingest).
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="queued"),
                name="msg_outbox_idx",
            ),
            # Our sends by the id the provider gave them: what a batch of WhatsApp status
            # reports looks up (600 ids in a webhook inbox batch). Without it the lookup went
            # through the number's conversations and, with their count misjudged, scanned
            # every message once per conversation (0.6-1.4 s per batch).
            models.Index(
                fields=["external_id"],
                condition=models.Q(direction="out"),
                name="msg_out_external_idx",
            ),
        ]

    def __str__(self):
        return f"{self.get_direction_display()} #{self.pk}"


class Attachment(models.Model):
    """A file that came with a message: name, type and size always; the content only when it
    is within settings.ATTACHMENT_MAX_BYTES (larger ones are recorded, not stored)."""

    tenant_path = "conversation__company"
    visibility_path = "conversation__"

    class Kind(models.TextChoices):
        IMAGE = "image", _("Image")
        VIDEO = "video", _("Video")
        AUDIO = "audio", _("Audio")
        VOICE = "voice", _("Voice note")
        DOCUMENT = "document", _("Document")
        STICKER = "sticker", _("Sticker")
        OTHER = "other", _("Other")

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    # The message's conversation, kept here so a conversation's (or a number's) files are
    # found and counted without reading its messages.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="attachments"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.OTHER)
    filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)  # None: the channel did not say
    # Empty when not stored (over the size limit, or the channel only announced it).
    file = models.FileField(upload_to="attachments/%Y/%m/", max_length=255, blank=True)
    external_id = models.CharField(max_length=255, blank=True)  # the provider's media id

    class DownloadState(models.TextChoices):
        """Where the file is: `ready` (stored, or nothing to fetch), `pending` (an inbound
        file being fetched from the channel in the background), `failed` (see
        download_error; an agent can retry)."""

        READY = "ready", _("Ready")
        PENDING = "pending", _("Downloading")
        FAILED = "failed", _("Download failed")

    download_state = models.CharField(
        max_length=10, choices=DownloadState.choices, default=DownloadState.READY
    )
    download_error = models.CharField(max_length=500, blank=True)
    download_attempts = models.PositiveIntegerField(default=0)
    # What the channel needs to fetch an announced file beyond external_id (its own shape).
    download_ref = models.JSONField(default=dict, blank=True)
    # The claim of a running download (a second task finds it taken); stale after a while.
    download_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # The download sweeper reads the few pending files, never the whole table.
            models.Index(
                fields=["created_at"],
                name="attachment_pending_idx",
                condition=models.Q(download_state="pending"),
            )
        ]

    def __str__(self):
        return self.filename or f"{self.get_kind_display()} #{self.pk}"

    @property
    def is_image(self) -> bool:
        return self.kind in (self.Kind.IMAGE, self.Kind.STICKER) or self.content_type.startswith(
            "image/"
        )

    @property
    def stored(self) -> bool:
        return bool(self.file)


class MessageReaction(models.Model):
    """An emoji on an inbox message: the customer's (one per message, replaced when they pick
    another, deleted when they remove it) or ours (one per message: a channel shows one
    reaction per participant, and all agents speak as the same number or account; `author`
    is the agent who set it). Never a message of its own, never unread."""

    tenant_path = "message__conversation__company"
    visibility_path = "message__conversation__"

    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="reactions", db_index=False
    )
    from_customer = models.BooleanField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    emoji = models.CharField(max_length=32)
    # Ours only: "" sent (or being sent), else why the channel refused it.
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # Also the index that finds a message's reactions (it leads with the message).
            models.UniqueConstraint(
                fields=["message", "from_customer"], name="message_reaction_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["author"], condition=models.Q(author__isnull=False), name="msgreact_author"
            )
        ]

    def __str__(self):
        return self.emoji


class TeamChat(models.Model):
    tenant_path = "company"

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="team_chats"
    )
    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="ChatMember", related_name="team_chats"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self):
        return self.name


class ChatMember(models.Model):
    tenant_path = "chat__company"

    chat = models.ForeignKey(TeamChat, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_memberships"
    )
    joined_at = models.DateTimeField(auto_now_add=True)
    last_read_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chat", "user"], name="chat_member_unique")]

    def __str__(self):
        return f"{self.user} in {self.chat}"


class ChatMessage(models.Model):
    tenant_path = "chat__company"

    chat = models.ForeignKey(TeamChat, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="chat_messages",
    )
    body = models.TextField(max_length=10000)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["chat", "-created_at", "-id"], name="chatmsg_history_idx")]

    def __str__(self):
        return f"Chat message #{self.pk}"


class Reaction(models.Model):
    tenant_path = "message__chat__company"

    message = models.ForeignKey(ChatMessage, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reactions"
    )
    emoji = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_unique")
        ]

    def __str__(self):
        return self.emoji
