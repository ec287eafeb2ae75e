from django.urls import path

from messaging.views import attachments, inbox

urlpatterns = [
    path("inbox/", inbox.inbox, name="inbox"),
    path("attachments/<int:pk>/", attachments.attachment_download, name="attachment_download"),
    path(
        "attachments/<int:pk>/retry-download/",
        attachments.attachment_retry_download,
        name="attachment_retry_download",
    ),
    path("inbox/<int:pk>/", inbox.conversation_detail, name="conversation_detail"),
    path("inbox/<int:pk>/header/", inbox.conversation_header, name="conversation_header"),
    path("inbox/<int:pk>/messages/", inbox.conversation_messages, name="conversation_messages"),
    path("inbox/<int:pk>/reply/", inbox.conversation_reply, name="conversation_reply"),
    path("inbox/<int:pk>/note/", inbox.conversation_note, name="conversation_note"),
    path(
        "inbox/<int:pk>/messages/<int:message_pk>/retry/",
        inbox.message_retry,
        name="conversation_message_retry",
    ),
    path(
        "inbox/<int:pk>/messages/<int:message_pk>/react/",
        inbox.message_react,
        name="conversation_message_react",
    ),
    path("inbox/<int:pk>/assign/", inbox.conversation_assign, name="conversation_assign"),
    path("inbox/<int:pk>/status/", inbox.conversation_status, name="conversation_status"),
    path("inbox/<int:pk>/read/", inbox.conversation_read, name="conversation_read"),
]
