from django.urls import path

from messaging.views import chats

urlpatterns = [
    path("chats/", chats.chat_list, name="chats"),
    path("chats/<int:pk>/", chats.chat_detail, name="chat_detail"),
]
