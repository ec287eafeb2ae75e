from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.utils.text import Truncator

from crm.admin_utils import DatabaseCascadeDeleteMixin, count_subquery
from messaging import channels
from messaging.models import (
    Attachment,
    ChatMember,
    ChatMessage,
    Conversation,
    Message,
    Reaction,
    TeamChat,
)


def _preview(text: str) -> str:
    return Truncator(text).chars(80)


# ---------------------------------------------------------------- Inbox


class ConversationChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        channels.attach_sources(self.result_list)  # one query per platform, not per row


@admin.register(Conversation)
class ConversationAdmin(DatabaseCascadeDeleteMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "company",
        "platform",
        "source",
        "assignee",
        "status",
        "unread_count",
        "last_message_at",
    )
    list_filter = ("platform", "status", "company")
    list_select_related = (
        "company",
        "client",
        "assignee",
    )
    search_fields = ("=external_thread_id", "subject", "client__name", "client__phone")
    autocomplete_fields = ("company", "assignee")
    raw_id_fields = ("client",)
    readonly_fields = ("created_at", "updated_at")
    show_full_result_count = False

    @admin.display(description="account")
    def source(self, obj):
        return obj.source

    def get_changelist(self, request, **kwargs):
        return ConversationChangeList


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    # A table of millions: newest first by primary key (an index), no full count, raw ids.
    list_display = (
        "id",
        "conversation",
        "company",
        "direction",
        "status",
        "sender_name",
        "body_preview",
        "created_at",
    )
    list_filter = ("direction", "status", "conversation__platform", "conversation__company")
    list_select_related = ("conversation", "conversation__client", "conversation__company")
    search_fields = ("=external_id", "=sender_address", "sender_name")
    raw_id_fields = ("conversation", "author", "bot")
    readonly_fields = ("created_at",)
    ordering = ("-id",)
    show_full_result_count = False

    @admin.display(description="company", ordering="conversation__company__name")
    def company(self, obj):
        return obj.conversation.company

    @admin.display(description="body")
    def body_preview(self, obj):
        return _preview(obj.body)


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ("id", "filename", "kind", "content_type", "size", "stored", "message")
    list_filter = ("kind",)
    search_fields = ("filename", "=external_id")
    raw_id_fields = ("message",)
    readonly_fields = ("created_at",)
    ordering = ("-id",)
    show_full_result_count = False

    @admin.display(boolean=True)
    def stored(self, obj):
        return obj.stored


# ---------------------------------------------------------------- Team chats


class ChatMemberInline(admin.TabularInline):
    model = ChatMember
    fields = ("user", "joined_at", "last_read_at")
    readonly_fields = ("joined_at",)
    raw_id_fields = ("user",)
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


@admin.register(TeamChat)
class TeamChatAdmin(DatabaseCascadeDeleteMixin, admin.ModelAdmin):
    list_display = ("name", "company", "created_by", "member_count", "created_at", "updated_at")
    list_filter = ("company",)
    list_select_related = ("company", "created_by")
    search_fields = ("name", "company__name")
    autocomplete_fields = ("company", "created_by")
    readonly_fields = ("created_at", "updated_at")
    inlines = (ChatMemberInline,)

    def get_queryset(self, request):
        return (
            super().get_queryset(request).annotate(member_count=count_subquery(ChatMember, "chat"))
        )

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj):
        return obj.member_count


@admin.register(ChatMember)
class ChatMemberAdmin(admin.ModelAdmin):
    list_display = ("user", "chat", "company", "joined_at", "last_read_at")
    list_filter = ("chat__company",)
    list_select_related = ("user", "chat", "chat__company")
    search_fields = ("user__username", "chat__name")
    raw_id_fields = ("chat", "user")
    readonly_fields = ("joined_at",)

    @admin.display(description="company", ordering="chat__company__name")
    def company(self, obj):
        return obj.chat.company


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = ("id", "chat", "company", "author", "body_preview", "created_at", "edited_at")
    list_filter = ("chat__company",)
    list_select_related = ("chat", "chat__company", "author")
    search_fields = ("body", "author__username")
    raw_id_fields = ("chat", "author")
    readonly_fields = ("created_at",)
    ordering = ("-id",)
    show_full_result_count = False

    @admin.display(description="company", ordering="chat__company__name")
    def company(self, obj):
        return obj.chat.company

    @admin.display(description="body")
    def body_preview(self, obj):
        return _preview(obj.body)


@admin.register(Reaction)
class ReactionAdmin(admin.ModelAdmin):
    list_display = ("emoji", "user", "message", "company", "created_at")
    list_filter = ("message__chat__company",)
    list_select_related = ("user", "message", "message__chat__company")
    search_fields = ("=emoji", "user__username")
    raw_id_fields = ("message", "user")
    readonly_fields = ("created_at",)

    @admin.display(description="company", ordering="message__chat__company__name")
    def company(self, obj):
        return obj.message.chat.company
