from django.urls import path, re_path

from .consumers import NotFoundConsumer, RealtimeConsumer

websocket_urlpatterns = [
    path("ws/", RealtimeConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),  # any other path: refused, not a 500
]
