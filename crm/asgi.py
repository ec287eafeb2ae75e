"""The ASGI application of every server process (uvicorn for pages, API and webhooks; daphne
for WebSockets and in development).

Pages and API run as WSGI in a small thread pool (a2wsgi): one hop from the event loop to a
thread per request. Django's own ASGI handler runs a sync view with several hops through
one shared thread per process (request signals, middleware, view, response close); on the
conversation list that cost ~2 ms of CPU per request and served ~20% fewer requests per second
(bench/api_load.py). Signed webhooks (WebhookFastPath) and WebSockets stay asynchronous."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
django_wsgi_app = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from channels.sessions import CookieMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402

from messaging.routing import websocket_urlpatterns  # noqa: E402
from webhook_inbox.asgi import WebhookFastPath  # noqa: E402

# Fewer young collections in a server process (crm.settings.SERVER_GC_THRESHOLD says why).
gc.set_threshold(settings.SERVER_GC_THRESHOLD, *gc.get_threshold()[1:])

if settings.DEBUG:
    # Development serves /static/ from daphne; in production nginx does (deploy/).
    from django.contrib.staticfiles.handlers import StaticFilesHandler

    django_wsgi_app = StaticFilesHandler(django_wsgi_app)

django_http_app = WSGIMiddleware(django_wsgi_app, workers=settings.WEB_THREADS)


class SameHostOriginValidator(OriginValidator):
    """Browsers always send Origin on a WebSocket; a foreign one is refused (cross-site
    WebSocket hijacking). No Origin means a non-browser client, which authenticates with
    `?token=` and cannot ride someone's session cookie."""

    def valid_origin(self, parsed_origin):
        return parsed_origin is None or super().valid_origin(parsed_origin)


application = ProtocolTypeRouter(
    {
        # Signed WhatsApp Cloud and Meta deliveries go straight to the webhook inbox (group commit).
        "http": WebhookFastPath(django_http_app),
        # The socket's user: messaging.consumers reads the token or the session cookie itself
        # (one query, off channels' single ORM thread), so no session or auth middleware here.
        "websocket": SameHostOriginValidator(
            CookieMiddleware(URLRouter(websocket_urlpatterns)), settings.ALLOWED_HOSTS
        ),
    }
)
