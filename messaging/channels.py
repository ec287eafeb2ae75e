"""The channel boundary: the registry (platform -> channel) and the typed data that crosses it.

`messaging` knows channels only through this module. A channel (a folder of
`channels_integrations`) subclasses `Channel`, says what it can do (`Capabilities`), which of
its models is a conversation's source and how a client is addressed, builds the typed route of
an outgoing message from its own source row, and sends it. It registers itself with one line
(`register(MyChannel())`, run from the app's `ready()`); nothing here imports a channel.

A conversation names its source by (platform, source id): `Conversation.source` finds the row
through the registry, and a trigger on the source's table (`messaging.db.conversations_follow`,
in the channel's migration) deletes the conversations with their source, inside PostgreSQL.

Senders get plain, typed data and touch no ORM; `messaging.sending` (the one send policy)
claims rows, calls `Channel.send` and records outcomes.
"""

from dataclasses import asdict, dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.translation import gettext as _

from crm.db import cascades

MB = 1024 * 1024


@dataclass(frozen=True)
class FileLimit:
    """One kind of file a channel sends: its largest size and the types it takes (empty: any).
    A file is sent as the first kind of its channel that takes its type and size."""

    kind: str  # image, video, audio, document (Attachment.Kind values)
    max_bytes: int
    content_types: tuple[str, ...] = ()

    def takes_type(self, content_type: str) -> bool:
        return not self.content_types or content_type in self.content_types


@dataclass(frozen=True)
class Capabilities:
    """What a channel can do; pages and services ask this instead of naming platforms."""

    max_text_length: int
    attachments: bool = False
    # Files agents may send (with `attachments`): per kind, and at most this many bytes in
    # all per message (None: no total limit), at most `max_files` per message.
    file_limits: tuple[FileLimit, ...] = ()
    files_total_bytes: int | None = None
    max_files: int = 10
    quotes: bool = False  # a reply can quote one of the conversation's messages
    reactions: bool = False
    edits: bool = False
    templates: bool = False
    reply_window: timedelta | None = None  # free-form replies only this long after the client wrote
    # How a reply is written: "chat" (Enter sends) or "mail" (subject, Cc/Bcc, quoting; Enter
    # is a new line and Ctrl/Cmd+Enter sends).
    compose: str = "chat"


@dataclass(frozen=True)
class TemplateComponent:
    """The filled placeholders of one component of a template ("header", "body")."""

    type: str
    parameters: tuple[str, ...]


@dataclass(frozen=True)
class TemplatePart:
    """A pre-approved message template, with its variables filled: what a channel with
    `templates` sends instead of free text (outside its reply window, say)."""

    name: str
    language: str
    components: tuple[TemplateComponent, ...] = ()
    rendered: str = ""  # the text the client reads, as we store and show it
    header: "OutboundFile | None" = None  # the file of a media header (kind: its format)

    def as_metadata(self) -> dict:
        data = {
            "name": self.name,
            "language": self.language,
            "components": {c.type: list(c.parameters) for c in self.components},
        }
        if self.header is not None:
            data["header"] = asdict(self.header)
        return data

    @classmethod
    def from_metadata(cls, data: dict, rendered: str = "") -> "TemplatePart":
        components = tuple(
            TemplateComponent(type=str(kind), parameters=tuple(str(v) for v in values))
            for kind, values in (data.get("components") or {}).items()
        )
        header = OutboundFile(**data["header"]) if data.get("header") else None
        return cls(str(data["name"]), str(data["language"]), components, rendered, header)


@dataclass(frozen=True)
class TemplateOption:
    """A template a source offers, for pickers: how many variables each component has."""

    name: str
    language: str
    category: str
    texts: dict  # component type -> its text with {{1}} placeholders
    variables: dict  # component type -> number of placeholders


@dataclass(frozen=True)
class ReplyWindow:
    """A conversation's customer-service window: free text may be sent while it is open."""

    is_open: bool
    closes_at: object  # datetime, or None when the client never wrote

    @property
    def state(self) -> str:
        return "open" if self.is_open else "closed"


@dataclass(frozen=True)
class OutboundMessage:
    """One message to send, as a channel's sender receives it.

    `key` names what the send protects, namespaced by its kind ("message:12",
    "broadcast-recipient:34"): the record that a send happened is kept under it, so no two
    kinds of row can ever answer for each other. `route` is the channel's own frozen dataclass
    (credentials, holder, thread headers), built by `Channel.route` from its source row.
    """

    key: str
    platform: str
    company_id: int
    source_id: int
    to_address: str
    body: str
    route: object
    subject: str = ""
    quoted: str = ""  # the channel's id of a message to quote, if any
    template: TemplatePart | None = None  # sent instead of `body` (which is its rendering)
    files: tuple["OutboundFile", ...] = ()
    # An automatic reply (an away reply): channels that can say so do (email:
    # `Auto-Submitted: auto-replied`, RFC 3834), so the other side's responders stay quiet.
    auto_submitted: bool = False


@dataclass(frozen=True)
class OutboundReaction:
    """Our reaction on a client's message, as a channel's `react` receives it; `emoji` empty
    removes ours."""

    key: str
    platform: str
    company_id: int
    source_id: int
    to_address: str
    target_external_id: str
    emoji: str
    route: object


@dataclass(frozen=True)
class OutboundFile:
    """A file of an outgoing message, stored by us: senders stream it from storage (`open`)
    and never read it whole. `kind` is how the channel sends it (FileLimit.kind)."""

    storage_name: str
    filename: str
    content_type: str
    size: int
    kind: str

    def open(self):
        from django.core.files.storage import default_storage

        return default_storage.open(self.storage_name, "rb")


def file_kind(capabilities: Capabilities, label: str, filename: str, content_type: str, size: int):
    """The kind `capabilities` sends this file as; ValidationError on `files` naming the file
    and the limit it breaks."""
    if not capabilities.attachments or not capabilities.file_limits:
        raise ValidationError({"files": [_("%(channel)s cannot send files.") % {"channel": label}]})
    typed = [limit for limit in capabilities.file_limits if limit.takes_type(content_type)]
    if not typed:
        raise ValidationError(
            {
                "files": [
                    _("%(channel)s cannot send “%(name)s” (%(type)s): it takes %(types)s.")
                    % {
                        "channel": label,
                        "name": filename,
                        "type": content_type or "?",
                        "types": ", ".join(
                            sorted(
                                {t for lim in capabilities.file_limits for t in lim.content_types}
                            )
                        ),
                    }
                ]
            }
        )
    for limit in typed:
        if size <= limit.max_bytes:
            return limit.kind
    largest = max(typed, key=lambda limit: limit.max_bytes)
    raise ValidationError(
        {
            "files": [
                _("“%(name)s” is %(size)s; %(channel)s sends %(kind)s files up to %(limit)s.")
                % {
                    "name": filename,
                    "size": _megabytes(size),
                    "channel": label,
                    "kind": largest.kind,
                    "limit": _megabytes(largest.max_bytes),
                }
            ]
        }
    )


def _megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB" if size % MB else f"{size // MB} MB"


@dataclass(frozen=True)
class SendReceipt:
    external_id: str


class SendError(Exception):
    """The channel refused the message; `reason` is shown to the agent. `connection`: the
    source's connection itself failed (credentials refused, server unreachable), which its
    company's admins are told of (once per failure episode), not only the agent."""

    transient = False

    def __init__(self, reason: str, retry_after: float | None = None, *, connection: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.connection = connection


@dataclass(frozen=True)
class MediaToFetch:
    """An inbound file the channel announced and we fetch: the channel's id of it (a Graph
    media id, a Telegram message id), what it said of it, and the most we store."""

    external_id: str
    filename: str
    content_type: str
    max_bytes: int
    thread_id: str = ""  # the conversation's external thread id (a Telegram peer)
    size: int | None = None  # as announced
    ref: dict | None = None  # what the channel stored to fetch it (Attachment.download_ref)


class DownloadError(Exception):
    """An inbound file could not be fetched; `reason` is shown to the agent (who may retry)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    @classmethod
    def too_large(cls, size: int, limit: int) -> "DownloadError":
        """A file over what we store (every channel says it in the same words)."""
        return cls(
            f"The file is {size / 1048576:.1f} MB, over the {limit / 1048576:.0f} MB we store "
            "(ATTACHMENT_MAX_BYTES)."
        )


def write_within(chunks, destination, max_bytes: int) -> int:
    """Copy an inbound file's chunks into `destination`, refusing it (DownloadError.too_large)
    as soon as it passes `max_bytes`; the bytes written."""
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise DownloadError.too_large(received, max_bytes)
        destination.write(chunk)
    return received


class TransientSendError(SendError):
    """Worth retrying (network trouble, rate limit, flood wait, holder not connected)."""

    transient = True


class Channel:
    """One way of talking to clients. Subclasses set the attributes and implement the three
    methods; see README "Adding a channel"."""

    platform: str  # stored on conversations (at most 10 characters)
    label: str  # shown to people
    capabilities: Capabilities
    source_model = None  # the channel's model that conversations come from (number, account)
    # The source fields reply_window() reads: the inbox list loads only those and the id (a
    # source's encrypted secrets cost a decryption each when loaded); another field it reads
    # is fetched when read, one query per source.
    reply_window_fields: tuple[str, ...] = ()

    def client_address(self, conversation) -> str:
        """Where a reply in this conversation goes (phone, peer id, email address)."""
        return conversation.external_thread_id

    def reply_metadata(self, conversation, options: dict) -> dict:
        """Check a reply's channel-specific options (an email's subject and copies) and return
        what the queued message stores with them (the queued row is the truth); raise
        ValidationError naming the field when one is bad. By default a channel takes none."""
        given = [name for name, value in options.items() if value not in (None, "", [], ())]
        if given:
            raise ValidationError(
                {
                    name: [_("%(channel)s messages have no such field.") % {"channel": self.label}]
                    for name in given
                }
            )
        return {}

    def route(self, source, *, conversation=None, message=None) -> object:
        """The typed route of a send from `source` (for a reply: its conversation/message)."""
        raise NotImplementedError

    def send(self, message: OutboundMessage) -> SendReceipt:
        """Hand the message to the far end; raise SendError (transient or not) when refused."""
        raise NotImplementedError

    def react(self, reaction: OutboundReaction) -> None:
        """Set (or, with an empty emoji, remove) our reaction on a client's message; raise
        SendError when refused. Channels with `capabilities.reactions` implement it."""
        raise SendError(_("%(channel)s has no reactions.") % {"channel": self.label})

    def is_live(self, source) -> bool:
        """Whether the source may receive and send now (active, not being deleted)."""
        return bool(source.is_active)

    def reply_window(self, source) -> timedelta | None:
        """How long after the client's last message free text may be sent from `source`
        (None: always). By default the channel's capability; a channel may vary it by source,
        never beyond it (no capability: no window from any source)."""
        return self.capabilities.reply_window

    def template_options(self, source) -> list[TemplateOption]:
        """The templates `source` may send now (approved ones), for pickers."""
        return []

    def resolve_template(self, source, name: str, language: str, variables) -> TemplatePart:
        """Check a template send (it exists, is approved, is `source`'s, has its variables)
        and return it filled and rendered; raise ValidationError naming the field."""
        raise ValidationError(
            {"template": [_("%(channel)s has no message templates.") % {"channel": self.label}]}
        )

    def fetches_media(self, source) -> bool:
        """Whether announced inbound files of `source` are downloaded (fetch_media)."""
        return False

    def fetch_media(self, source, media: MediaToFetch, destination) -> str:
        """Write the announced file to `destination` (a binary file) in chunks, at most
        `media.max_bytes`; return its content type (or ""). Raise DownloadError with words an
        agent can act on."""
        raise DownloadError(f"{self.label} files cannot be downloaded.")


_REGISTRY: dict[str, Channel] = {}


def register(channel: Channel) -> Channel:
    """Make `channel` known under its platform (a second registration replaces the first)."""
    _REGISTRY[channel.platform] = channel
    # Its source's trigger deletes its conversations: the deletion preview counts them.
    cascades.register(
        channel.source_model,
        "messaging.Conversation",
        lambda doomed: Q(platform=channel.platform, source_id__in=doomed.values("pk")),
    )
    return channel


def get(platform: str) -> Channel:
    try:
        return _REGISTRY[platform]
    except KeyError:
        raise LookupError(f"No channel is registered for {platform!r}.") from None


def for_source(source) -> Channel:
    """The channel whose source model `source` is an instance of."""
    for channel in _REGISTRY.values():
        if isinstance(source, channel.source_model):
            return channel
    raise LookupError(f"No channel has {type(source).__name__} as its source.")


def live(source) -> bool:
    """Whether `source` may receive and send now: its channel says so (active, not being
    deleted) and its company is active (a deactivated company's channels go quiet)."""
    from accounts.selectors import company_is_active

    return for_source(source).is_live(source) and company_is_active(source.company_id)


def registered() -> list[Channel]:
    return list(_REGISTRY.values())


def platform_choices() -> list[tuple[str, str]]:
    """(platform, label) of every registered channel: Conversation.platform's choices."""
    return [(channel.platform, channel.label) for channel in _REGISTRY.values()]


def attach_sources(conversations) -> None:
    """Load the sources of many conversations with one query per platform (instead of one per
    conversation through `Conversation.source`)."""
    wanted: dict[str, set[int]] = {}
    for conversation in conversations:
        wanted.setdefault(conversation.platform, set()).add(conversation.source_id)
    found = {}
    for platform, ids in wanted.items():
        model = get(platform).source_model
        found.update({(platform, row.pk): row for row in model.objects.filter(pk__in=ids)})
    for conversation in conversations:
        conversation.source = found.get((conversation.platform, conversation.source_id))
