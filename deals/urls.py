from django.urls import path

from . import views

urlpatterns = [
    path("deals/", views.board, name="deal_board"),
    path("deals/list/", views.deal_list, name="deal_list"),
    path("deals/automation/", views.automation, name="deals_automation"),
    path("deals/pipelines/", views.pipeline_list, name="pipelines"),
    path("deals/pipelines/<int:pk>/", views.pipeline_edit, name="pipeline_edit"),
    path("deals/pipelines/<int:pk>/delete/", views.pipeline_delete, name="pipeline_delete"),
    path("deals/<int:pk>/", views.deal_detail, name="deal_detail"),
    path("deals/<int:pk>/card/", views.board_card, name="deal_card"),
    path("deals/<int:pk>/move/", views.deal_move, name="deal_move"),
    path("deals/<int:pk>/close/", views.deal_close, name="deal_close"),
    path("deals/<int:pk>/delete/", views.deal_delete, name="deal_delete"),
    path("clients/<int:pk>/deals/new/", views.client_deal_create, name="client_deal_create"),
    path(
        "conversations/<int:pk>/deal/",
        views.conversation_deal_create,
        name="conversation_deal_create",
    ),
]
