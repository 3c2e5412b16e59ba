"""Writes on users. Each function runs in the schema of the current tenant."""

import secrets

from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from crm.tenants.selectors import tenant_url
from crm.users.models import Role, User


def _email_normalize(email: str) -> str:
    return User.objects.normalize_email(email.strip()).lower()


def user_create(*, email: str, password: str | None, full_name: str, role: str, team=None) -> User:
    """Create an active user; `password=None` leaves it unusable (for invitations)."""
    email = _email_normalize(email)
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": "A user with this e-mail already exists."})
    user = User(email=email, full_name=full_name.strip(), role=role, team=team)
    if password is None:
        user.set_unusable_password()
    else:
        validate_password(password, user)
        user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user


def user_invite(*, invited_by: User, email: str, full_name: str, role: str, team=None) -> User:
    """Create an invited user; a Celery task e-mails them a link to choose a password once the
    transaction commits. The link is a password-reset token, which stops working once used."""
    from crm.users.tasks import invitation_send

    with transaction.atomic():
        user = user_create(email=email, password=None, full_name=full_name, role=role, team=team)
        user.invited_at = timezone.now()
        user.invited_by = invited_by
        user.save(update_fields=["invited_at", "invited_by"])
        transaction.on_commit(lambda: invitation_send.delay(user.pk))
    return user


def invitation_email_send(*, tenant, user: User) -> None:
    link = tenant_url(tenant, reverse("users:accept_invite", kwargs=_token_kwargs(user)))
    context = {"user": user, "tenant": tenant, "invited_by": user.invited_by, "link": link}
    inviter = user.invited_by.full_name if user.invited_by else "Your admin"
    send_mail(
        subject=f"{inviter} invited you to {tenant.name}'s CRM",
        message=render_to_string("users/email/invite.txt", context),
        from_email=None,
        recipient_list=[user.email],
    )


def _token_kwargs(user: User) -> dict[str, str]:
    return {
        "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": default_token_generator.make_token(user),
    }


def user_update(*, actor: User, user: User, role: str, team=None) -> User:
    """Change a user's role and team; a workspace always keeps one active admin."""
    if role not in Role.values:
        raise ValidationError({"role": "Unknown role."})
    _refuse_last_admin_loss(actor=actor, user=user, losing=role != Role.ADMIN)
    user.role = role
    user.team = team
    user.save(update_fields=["role", "team"])
    return user


def user_set_active(*, actor: User, user: User, active: bool) -> User:
    """Deactivate or reactivate a user. A deactivated user's sessions stop working at once,
    because the authentication backend refuses inactive users on every request."""
    if not active:
        _refuse_last_admin_loss(actor=actor, user=user, losing=True)
    user.is_active = active
    user.save(update_fields=["is_active"])
    return user


def _refuse_last_admin_loss(*, actor: User, user: User, losing: bool) -> None:
    if not losing or user.role != Role.ADMIN:
        return
    if user.pk == actor.pk:
        raise ValidationError("You cannot remove your own admin access.")
    if not User.objects.filter(role=Role.ADMIN, is_active=True).exclude(pk=user.pk).exists():
        raise ValidationError("A workspace needs at least one active admin.")


def user_accept_invite(*, user: User, password: str) -> User:
    validate_password(password, user)
    user.set_password(password)
    user.invited_at = None
    user.save(update_fields=["password", "invited_at"])
    return user


def user_calendar_token(*, user: User) -> str:
    """The secret of the user's calendar feed URL, made on first use."""
    if not user.calendar_token:
        user.calendar_token = secrets.token_urlsafe(32)
        user.save(update_fields=["calendar_token"])
    return user.calendar_token
