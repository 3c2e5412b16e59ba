from celery import shared_task
from django.db import connection

from crm.users import services
from crm.users.models import User


@shared_task
def invitation_send(user_id: int) -> bool:
    """E-mail an invitation. Runs in the inviting tenant's schema; does nothing once the person
    has accepted (so a retried task never re-invites someone who joined)."""
    user = User.objects.filter(pk=user_id, invited_at__isnull=False, is_active=True).first()
    if user is None:
        return False
    services.invitation_email_send(tenant=connection.tenant, user=user)
    return True
