"""The installable app (PWA): the manifest, the service worker (served from / so its scope is
the whole site) and the page it shows when the network is gone. All public: the browser
fetches them before and without a session."""

import json

from django.http import HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

CACHE = "switchboard-offline-v1"


@require_GET
@cache_control(max_age=3600)
def manifest(request):
    body = {
        "name": "Switchboard",
        "short_name": "Switchboard",
        "description": _("One inbox for WhatsApp, Telegram, email and more."),
        "lang": request.LANGUAGE_CODE,
        "start_url": reverse("inbox"),
        "scope": "/",
        "display": "standalone",
        "background_color": "#f5f6fa",
        "theme_color": "#161a2b",
        "icons": [
            {
                "src": static(f"icons/icon-{size}.png"),
                "sizes": f"{size}x{size}",
                "type": "image/png",
            }
            for size in (192, 512)
        ]
        + [
            {
                "src": static(f"icons/icon-maskable-{size}.png"),
                "sizes": f"{size}x{size}",
                "type": "image/png",
                "purpose": "maskable",
            }
            for size in (192, 512)
        ],
    }
    return HttpResponse(
        json.dumps(body, ensure_ascii=False), content_type="application/manifest+json"
    )


@require_GET
@cache_control(no_cache=True)
def service_worker(request):
    """Pages always come from the network; when it fails, the cached offline page answers.
    Nothing else is cached (a CRM's data must not be stale)."""
    offline = reverse("offline")
    script = f"""// Switchboard's service worker: the offline page when the network is gone.
const CACHE = {json.dumps(CACHE)};
const OFFLINE = {json.dumps(offline)};
const ASSETS = [OFFLINE, {json.dumps(static("css/app.css"))}, {json.dumps(static("icons/icon.svg"))}];
self.addEventListener("install", (event) => {{
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(ASSETS)).then(() => self.skipWaiting()));
}});
self.addEventListener("activate", (event) => {{
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim())
  );
}});
self.addEventListener("fetch", (event) => {{
  const request = event.request;
  if (request.method !== "GET") return;
  if (request.mode === "navigate") {{
    event.respondWith(fetch(request).catch(() => caches.match(OFFLINE)));
    return;
  }}
  if (ASSETS.includes(new URL(request.url).pathname)) {{
    event.respondWith(fetch(request).catch(() => caches.match(request)));
  }}
}});
"""
    response = HttpResponse(script, content_type="application/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    return response


@require_GET
def offline(request):
    return render(request, "offline.html")
