from django.urls import path

from . import views

urlpatterns = [
    path("settings/labels/", views.label_list, name="label_list"),
    path("settings/labels/<int:pk>/", views.label_edit, name="label_edit"),
    path("settings/labels/<int:pk>/delete/", views.label_delete, name="label_delete"),
    path("inbox/<int:pk>/labels/", views.conversation_labels, name="conversation_labels"),
    path("clients/<int:pk>/labels/", views.client_labels, name="client_labels"),
    path("inbox/views/", views.saved_view_list, name="saved_view_list"),
    path("inbox/views/<int:pk>/", views.savedview_edit, name="savedview_edit"),
    path("inbox/views/<int:pk>/delete/", views.savedview_delete, name="savedview_delete"),
    path("inbox/bulk/", views.inbox_bulk, name="inbox_bulk"),
    path("inbox/label-menus/", views.inbox_label_menus, name="inbox_label_menus"),
]
