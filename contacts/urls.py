from django.urls import path

from contacts import views

app_name = "contacts"

urlpatterns = [
    path("accounts/", views.account_list, name="account_list"),
    path("contacts/", views.contact_list, name="contact_list"),
]
