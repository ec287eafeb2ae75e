from django.urls import path

from messaging.views import chats, inbox

urlpatterns = [
    path("inbox/", inbox.inbox, name="inbox"),
    path("inbox/<int:pk>/", inbox.conversation_detail, name="conversation_detail"),
    path("chats/", chats.chat_list, name="chats"),
    path("chats/<int:pk>/", chats.chat_detail, name="chat_detail"),
]
