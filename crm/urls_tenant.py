from django.urls import include, path

from crm import views

urlpatterns = [
    path("", views.home, name="home"),
    path("", include("crm.users.urls")),
    path("", include("contacts.urls")),
    path("opportunities/", include("opportunities.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("", include("integrations.urls")),
    path("", include("crm.api.urls")),
]
