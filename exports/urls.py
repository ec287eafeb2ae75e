from django.urls import path

from . import views

urlpatterns = [
    path("exports/start/", views.export_start, name="export_start"),
    path("exports/<int:pk>/", views.export_card, name="export_card"),
    path("exports/<int:pk>/download/", views.export_download, name="export_download"),
]
