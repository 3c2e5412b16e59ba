from django.urls import path

from leads import public_views, views

app_name = "leads"

urlpatterns = [
    # The marketer's builder.
    path("forms/", views.form_list, name="form_list"),
    path("forms/new/", views.form_edit, name="form_create"),
    path("forms/<int:pk>/", views.form_detail, name="form_detail"),
    path("forms/<int:pk>/edit/", views.form_edit, name="form_edit"),
    # Public: the hosted page, the embed script's endpoint and the double opt-in link.
    path("f/<uuid:key>/", public_views.hosted_form, name="hosted_form"),
    path("f/<uuid:key>/thanks/", public_views.hosted_thanks, name="hosted_thanks"),
    path("f/<uuid:key>/api/", public_views.form_api, name="form_api"),
    path("f/confirm/<str:token>/", public_views.confirm, name="confirm"),
]
