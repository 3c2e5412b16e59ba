from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.http import require_POST

from crm.access import require
from crm.users import services
from crm.users.forms import InviteForm, UserEditForm
from crm.users.models import User
from crm.users.tokens import welcome_token_generator


def welcome(request, uidb64, token):
    """Log in the founder who just created this workspace on the public site."""
    try:
        user = User.objects.get(pk=force_str(urlsafe_base64_decode(uidb64)), is_active=True)
    except (User.DoesNotExist, ValueError, TypeError, OverflowError):
        user = None
    if user is None or not welcome_token_generator.check_token(user, token):
        messages.error(request, "That sign-in link has expired. Please log in.")
        return redirect("users:login")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, "Your workspace is ready. Welcome!")
    return redirect("home")


class AcceptInviteView(auth_views.PasswordResetConfirmView):
    """An invited user chooses a password through the same one-time token as a reset."""

    template_name = "users/accept_invite.html"
    success_url = reverse_lazy("home")
    post_reset_login = True
    reset_url_token = "set-password"

    def form_valid(self, form):
        services.user_accept_invite(user=form.user, password=form.cleaned_data["new_password1"])
        login(self.request, form.user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(self.success_url)


@login_required
@require("users.manage")
def user_list(request):
    users = User.objects.select_related("team").order_by("full_name")
    return render(request, "users/user_list.html", {"users": users})


@login_required
@require("users.manage")
def user_invite(request):
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_invite(invited_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Invitation sent to {user.email}.")
            return redirect("users:list")
    return render(request, "users/user_invite.html", {"form": form})


@login_required
@require("users.manage")
def user_edit(request, pk):
    user = get_object_or_404(User, pk=pk)
    form = UserEditForm(request.POST or None, initial={"role": user.role, "team": user.team})
    if request.method == "POST" and form.is_valid():
        try:
            services.user_update(actor=request.user, user=user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error("role", exc)
        else:
            messages.success(request, f"{user.full_name} is now {user.get_role_display()}.")
            return redirect("users:list")
    return render(request, "users/user_edit.html", {"form": form, "member": user})


@login_required
@require("users.manage")
@require_POST
def user_active(request, pk):
    user = get_object_or_404(User, pk=pk)
    active = request.POST.get("active") == "1"
    try:
        services.user_set_active(actor=request.user, user=user, active=active)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        state = "reactivated" if active else "deactivated"
        messages.success(request, f"{user.full_name} was {state}.")
    return redirect("users:list")
