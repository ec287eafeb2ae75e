from django.urls import path

from . import views

urlpatterns = [
    path("reports/", views.reports, name="reports"),
    path("reports/<slug:name>.csv", views.report_csv, name="report_csv"),
]
