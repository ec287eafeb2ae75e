"""Read-only inbox and team chat pages (the live inbox replaces the inbox later)."""

from django.core.paginator import Paginator
from django.shortcuts import render

from accounts.views import company_member_required
from messaging import selectors
from messaging.models import Conversation, Platform

CONVERSATIONS_PER_PAGE = 50


@company_member_required
def inbox(request):
    platform = request.GET.get("platform", "")
    status = request.GET.get("status", "")
    conversations = selectors.inbox_conversations(request.user, platform=platform, status=status)
    page = Paginator(conversations, CONVERSATIONS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "messaging/inbox.html",
        {
            "page": page,
            "platform": platform,
            "status": status,
            "platforms": Platform.choices,
            "statuses": Conversation.Status.choices,
        },
    )


@company_member_required
def conversation_detail(request, pk):
    conversation = selectors.get_conversation(request.user, pk)
    messages = selectors.conversation_messages(conversation)
    return render(
        request,
        "messaging/conversation_detail.html",
        {
            "conversation": conversation,
            "chat_messages": messages,
            "limited": len(messages) >= selectors.MESSAGE_LIMIT,
        },
    )
