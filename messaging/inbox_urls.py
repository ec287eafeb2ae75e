from django.urls import path

from messaging.views import inbox

urlpatterns = [
    path("inbox/", inbox.inbox, name="inbox"),
    path("inbox/<int:pk>/", inbox.conversation_detail, name="conversation_detail"),
]
