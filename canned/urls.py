from django.urls import path

from . import views

urlpatterns = [
    path("settings/canned-replies/", views.canned_replies, name="canned_replies"),
    path("settings/canned-replies/new/", views.canned_reply_create, name="canned_reply_create"),
    path(
        "settings/canned-replies/<int:pk>/edit/", views.canned_reply_edit, name="canned_reply_edit"
    ),
    path(
        "settings/canned-replies/<int:pk>/delete/",
        views.canned_reply_delete,
        name="canned_reply_delete",
    ),
]
