"""/api/v1/: every app's API in one router."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from accounts.api.views import ApiTokenViewSet, me
from channels_integrations.email.api import EmailAccountViewSet
from channels_integrations.telegram.api import TelegramAccountViewSet
from channels_integrations.whatsapp.api.numbers import WhatsAppNumberViewSet
from crm.api.views import ClientViewSet
from messaging.api.inbox import AttachmentViewSet, ConversationMessageViewSet, ConversationViewSet

router = DefaultRouter()
# The inbox first: the busiest reads. Django's resolver tries the patterns in order and
# notes every one it passed (ResolverMatch.tried): 65 µs to resolve the conversation list
# after the channels' and tokens' routes, 25 µs here.
router.register("conversations", ConversationViewSet, basename="conversation")
router.register(
    r"conversations/(?P<conversation_pk>\d+)/messages",
    ConversationMessageViewSet,
    basename="conversation-message",
)
router.register("clients", ClientViewSet, basename="client")
router.register("whatsapp/numbers", WhatsAppNumberViewSet, basename="whatsapp-number")
router.register("telegram/accounts", TelegramAccountViewSet, basename="telegram-account")
router.register("email/accounts", EmailAccountViewSet, basename="email-account")
router.register("tokens", ApiTokenViewSet, basename="api-token")
router.register("attachments", AttachmentViewSet, basename="attachment")

# labels and saved views
from triage.api import LabelViewSet, SavedViewViewSet  # noqa: E402

router.register("labels", LabelViewSet, basename="label")
router.register("saved-views", SavedViewViewSet, basename="saved-view")

# bots
from channels_integrations.whatsapp.api.bots import BotRuleViewSet, BotViewSet  # noqa: E402

router.register("whatsapp/bots", BotViewSet, basename="whatsapp-bot")
router.register(
    r"whatsapp/bots/(?P<bot_pk>\d+)/rules", BotRuleViewSet, basename="whatsapp-bot-rule"
)

# broadcasts
from channels_integrations.whatsapp.api.broadcasts import BroadcastViewSet  # noqa: E402

router.register("whatsapp/broadcasts", BroadcastViewSet, basename="whatsapp-broadcast")

# WhatsApp sessions
from channels_integrations.whatsapp.api.sessions import (  # noqa: E402
    WhatsAppSessionViewSet,
    whatsapp_metrics,
)

router.register("whatsapp/sessions", WhatsAppSessionViewSet, basename="whatsapp-session")

# team chats
from messaging.api.chats import ChatMessageViewSet, ChatViewSet  # noqa: E402

router.register("chats", ChatViewSet, basename="chat")
router.register(r"chats/(?P<chat_pk>\d+)/messages", ChatMessageViewSet, basename="chat-message")

# search and canned replies
from canned.api import CannedReplyViewSet  # noqa: E402
from inbox_search.api import SearchViewSet  # noqa: E402

router.register("search", SearchViewSet, basename="search")
router.register("canned-replies", CannedReplyViewSet, basename="canned-reply")
# notes and notifications
from messaging.api.notes import ConversationNoteViewSet  # noqa: E402
from notifications.api.views import NotificationViewSet  # noqa: E402

router.register(
    r"conversations/(?P<conversation_pk>\d+)/notes",
    ConversationNoteViewSet,
    basename="conversation-note",
)
router.register("notifications", NotificationViewSet, basename="notification")

# Channels that declare their routes in their folder (`channels_integrations/<name>/api.py`,
# ROUTES = ((prefix, viewset, basename), ...)): nothing to add here for a new channel.
from channels_integrations.apps import CHANNELS  # noqa: E402
from channels_integrations.registry import channel_module  # noqa: E402

for _name in CHANNELS:
    for _prefix, _viewset, _basename in getattr(channel_module(_name, "api"), "ROUTES", ()):
        router.register(_prefix, _viewset, basename=_basename)

# deals
from deals.api.views import DealViewSet, PipelineViewSet  # noqa: E402

router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("deals", DealViewSet, basename="deal")
# members, invitations, teams (teams app)
from teams.api import ROUTES as TEAM_ROUTES  # noqa: E402
from teams.api import my_presence  # noqa: E402

for _prefix, _viewset, _basename in TEAM_ROUTES:
    router.register(_prefix, _viewset, basename=_basename)

# exports (archives of a channel's or a client's conversations)
from exports.api.views import ExportJobViewSet  # noqa: E402

router.register("exports", ExportJobViewSet, basename="export")

urlpatterns = [
    path("me/", me, name="api-me"),
    path("me/presence/", my_presence, name="api-me-presence"),
    path("whatsapp/metrics/", whatsapp_metrics, name="whatsapp-metrics"),
    *router.urls,
]
