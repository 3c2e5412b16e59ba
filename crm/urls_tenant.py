from django.urls import include, path

from campaigns.unsubscribe import unsubscribe_page
from crm import views

urlpatterns = [
    path("", views.home, name="home"),
    path("", include("crm.users.urls")),
    path("", include("contacts.urls")),
    path("opportunities/", include("opportunities.urls")),
    path("campaigns/", include("campaigns.urls")),
    # Public: the link in every marketing e-mail; its signed token is the only authority.
    path("u/<str:token>/", unsubscribe_page, name="unsubscribe"),
    path("", include("integrations.urls")),
    path("", include("crm.api.urls")),
]
