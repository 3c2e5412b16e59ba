from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from crm.users import views

app_name = "users"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="users/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("welcome/<uidb64>/<token>/", views.welcome, name="welcome"),
    path(
        "password-reset/",
        auth_views.PasswordResetView.as_view(
            template_name="users/password_reset.html",
            email_template_name="users/email/password_reset.txt",
            subject_template_name="users/email/password_reset_subject.txt",
            success_url=reverse_lazy("users:password_reset_done"),
        ),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="users/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="users/password_reset_confirm.html",
            success_url=reverse_lazy("home"),
            post_reset_login=True,
        ),
        name="password_reset_confirm",
    ),
    path("invitation/<uidb64>/<token>/", views.AcceptInviteView.as_view(), name="accept_invite"),
    path("users/", views.user_list, name="list"),
    path("users/invite/", views.user_invite, name="invite"),
    path("users/<int:pk>/", views.user_edit, name="edit"),
    path("users/<int:pk>/active/", views.user_active, name="active"),
]
