"""Server-rendered pages (included at "" from crm.urls). Every view is behind
accounts.views.company_member_required; tests/test_pages.py checks that for each pattern."""

from django.urls import include, path

from crm import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("clients/", views.client_list, name="clients"),
    path("clients/new/", views.client_create, name="client_create"),
    path("clients/<int:pk>/", views.client_detail, name="client_detail"),
    path("clients/<int:pk>/edit/", views.client_edit, name="client_edit"),
    path("", include("messaging.page_urls")),
    path("", include("triage.page_urls")),
    path("", include("channels_integrations.page_urls")),
]
