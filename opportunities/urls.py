from django.urls import path

from opportunities import views

app_name = "opportunities"

urlpatterns = [
    path("", views.opportunity_list, name="list"),
    path("new/", views.opportunity_create, name="create"),
    path("export.csv", views.opportunity_export, name="export"),
    path("board/", views.board, name="board"),
    path("<int:pk>/", views.opportunity_detail, name="detail"),
    path("<int:pk>/edit/", views.opportunity_edit, name="edit"),
    path("<int:pk>/stage/", views.move_stage, name="move_stage"),
    path("<int:pk>/close/", views.opportunity_close, name="close"),
    path("<int:pk>/activities/", views.opportunity_log_activity, name="log_activity"),
    path("<int:pk>/tasks/", views.opportunity_add_task, name="add_task"),
    path("<int:pk>/line-items/", views.line_item_add, name="line_item_add"),
    path(
        "<int:pk>/line-items/<int:item_pk>/remove/",
        views.line_item_remove,
        name="line_item_remove",
    ),
    path("pipelines/", views.pipeline_list, name="pipeline_list"),
    path("pipelines/new/", views.pipeline_edit, name="pipeline_create"),
    path("pipelines/<int:pk>/", views.pipeline_edit, name="pipeline_edit"),
    path("products/", views.product_list, name="product_list"),
    path("products/new/", views.product_edit, name="product_create"),
    path("products/<int:pk>/", views.product_edit, name="product_edit"),
]
