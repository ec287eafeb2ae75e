from django.urls import include, path

urlpatterns = [
    path("", include("messaging.inbox_urls")),
    path("", include("messaging.chat_urls")),
]
