from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from channels_integrations.apps import CHANNELS
from channels_integrations.registry import declared
from channels_integrations.whatsapp.webhooks import whatsapp_webhook

from . import health, metrics, pwa

urlpatterns = [
    path("health", health.health, name="health"),
    # The installable app: public, the service worker at / for a whole-site scope.
    path("manifest.webmanifest", pwa.manifest, name="manifest"),
    path("service-worker.js", pwa.service_worker, name="service_worker"),
    path("offline/", pwa.offline, name="offline"),
    path("metrics", metrics.prometheus_metrics, name="metrics"),
    path("webhooks/whatsapp/<uuid:number_uuid>/", whatsapp_webhook, name="whatsapp-webhook"),
    # Channels' webhooks declared in their folders (`<name>/urls.py`, `webhook_patterns`).
    *(pattern for name in CHANNELS for pattern in declared(name, "urls", "webhook_patterns")),
    # The translations our own scripts use (djangojs), in the request's language; same origin,
    # so the CSP's script-src 'self' admits it.
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("crm.api.urls")),
    path("", include("accounts.urls")),
    path("", include("crm.page_urls")),
]

handler400 = "crm.errors.bad_request"
handler403 = "crm.errors.permission_denied"
handler404 = "crm.errors.page_not_found"
handler500 = "crm.errors.server_error"
