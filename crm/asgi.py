import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from channels.sessions import CookieMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402

from messaging.routing import websocket_urlpatterns  # noqa: E402
from webhook_inbox.asgi import WebhookFastPath  # noqa: E402

if settings.DEBUG:
    # Development serves /static/ from daphne; in production nginx does (deploy/).
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)


class SameHostOriginValidator(OriginValidator):
    """Browsers always send Origin on a WebSocket; a foreign one is refused (cross-site
    WebSocket hijacking). No Origin means a non-browser client, which authenticates with
    `?token=` and cannot ride someone's session cookie."""

    def valid_origin(self, parsed_origin):
        return parsed_origin is None or super().valid_origin(parsed_origin)


application = ProtocolTypeRouter(
    {
        # Signed WhatsApp Cloud and Meta deliveries go straight to the webhook inbox (group commit).
        "http": WebhookFastPath(django_asgi_app),
        # The socket's user: messaging.consumers reads the token or the session cookie itself
        # (one query, off channels' single ORM thread), so no session or auth middleware here.
        "websocket": SameHostOriginValidator(
            CookieMiddleware(URLRouter(websocket_urlpatterns)), settings.ALLOWED_HOSTS
        ),
    }
)
