"""Broadcast pages (included at "" by channels_integrations.page_urls)."""

from django.urls import path

from channels_integrations.views import broadcasts

urlpatterns = [
    path("broadcasts/", broadcasts.broadcast_list, name="broadcasts"),
    path("broadcasts/new/", broadcasts.broadcast_create, name="broadcast_create"),
    path("broadcasts/<int:pk>/", broadcasts.broadcast_detail, name="broadcast_detail"),
    path("broadcasts/<int:pk>/cancel/", broadcasts.broadcast_cancel, name="broadcast_cancel"),
]
