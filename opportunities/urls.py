from django.urls import path

from opportunities import views

app_name = "opportunities"

urlpatterns = [
    path("", views.opportunity_list, name="list"),
    path("board/", views.board, name="board"),
    path("<int:pk>/stage/", views.move_stage, name="move_stage"),
]
