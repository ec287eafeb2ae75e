from django.urls import path

from messaging import views

urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<int:pk>/", views.conversation_detail, name="conversation_detail"),
    path("chats/", views.chat_list, name="chats"),
    path("chats/<int:pk>/", views.chat_detail, name="chat_detail"),
]
