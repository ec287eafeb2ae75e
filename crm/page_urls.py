"""Server-rendered pages (included at "" from crm.urls). Every view is behind
accounts.views.company_member_required; tests/test_pages.py checks that for each pattern."""

from django.urls import include, path

from crm import client_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("clients/", views.client_list, name="clients"),
    path("clients/new/", views.client_create, name="client_create"),
    path("clients/<int:pk>/", views.client_detail, name="client_detail"),
    path("clients/<int:pk>/edit/", views.client_edit, name="client_edit"),
    path("clients/<int:pk>/merge/", client_views.client_merge, name="client_merge"),
    path("clients/<int:pk>/delete/", client_views.client_delete, name="client_delete"),
    path("clients/import/", client_views.clients_import, name="clients_import"),
    path("clients/export.csv", client_views.clients_export, name="clients_export"),
    path("", include("messaging.page_urls")),
    path("", include("triage.page_urls")),
    path("", include("channels_integrations.page_urls")),
    path("", include("deals.urls")),
    path("", include("reports.urls")),
    path("", include("canned.urls")),
    path("", include("notifications.urls")),
    path("", include("teams.urls")),
    path("", include("exports.urls")),
]
