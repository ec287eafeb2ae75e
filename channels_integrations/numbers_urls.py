"""Settings → WhatsApp pages (included at "" from channels_integrations.page_urls)."""

from django.urls import path

from channels_integrations.views import numbers

urlpatterns = [
    path("settings/whatsapp/", numbers.number_list, name="numbers"),
    path("settings/whatsapp/new/", numbers.number_create, name="number_create"),
    path("settings/whatsapp/<int:pk>/edit/", numbers.number_edit, name="number_edit"),
    path(
        "settings/whatsapp/<int:pk>/deactivate/",
        numbers.number_deactivate,
        name="number_deactivate",
    ),
    path(
        "settings/whatsapp/<int:pk>/reactivate/",
        numbers.number_reactivate,
        name="number_reactivate",
    ),
    path("settings/whatsapp/<int:pk>/delete/", numbers.number_delete, name="number_delete"),
    path(
        "settings/whatsapp/<int:pk>/session/connect/",
        numbers.number_session_connect,
        name="number_session_connect",
    ),
    path(
        "settings/whatsapp/<int:pk>/session/logout/",
        numbers.number_session_logout,
        name="number_session_logout",
    ),
]
