from django.urls import path

from tracking import views

app_name = "tracking"

urlpatterns = [
    path("", views.tracking_setup, name="setup"),
    path("identify-secret/", views.identify_secret_rotate, name="identify_secret_rotate"),
]
