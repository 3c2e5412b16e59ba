from django.urls import path

from tracking import score_views

app_name = "scoring"

urlpatterns = [
    path("ready/", score_views.ready_list, name="ready_list"),
    path("settings/scoring/", score_views.scoring_settings, name="settings"),
    path(
        "contacts/<int:pk>/engagement/",
        score_views.contact_engagement,
        name="contact_engagement",
    ),
]
