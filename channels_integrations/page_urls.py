from django.urls import path

from channels_integrations import views

urlpatterns = [
    path("settings/", views.settings_page, name="settings"),
]
