"""Team chat pages. They render; every write goes through the REST API (static/js/chats.js
calls it with the session's CSRF token), so pages and API clients share one write path."""

from django.shortcuts import render

from accounts.views import company_member_required
from messaging import selectors

QUICK_REACTIONS = ("👍", "❤️", "😂", "🎉", "👀", "✅")


@company_member_required
def chat_list(request):
    return render(
        request,
        "messaging/chat_list.html",
        {
            "chats": selectors.member_chats(request.user),
            "colleagues": selectors.company_colleagues(request.user),
        },
    )


@company_member_required
def chat_detail(request, pk):
    chat = selectors.get_member_chat(request.user, pk)
    messages = selectors.chat_messages(chat)
    return render(
        request,
        "messaging/chat_detail.html",
        {
            "chat": chat,
            "chat_messages": messages,
            "members": selectors.chat_members(chat),
            "limited": len(messages) >= selectors.MESSAGE_LIMIT,
            "quick_reactions": QUICK_REACTIONS,
        },
    )
