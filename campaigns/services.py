"""Writes on campaigns and their members. Each runs in the current tenant's schema."""

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from campaigns.models import Campaign, CampaignMember
from contacts.models import Contact
from tracking.models import TimelineEntry
from tracking.services import audit_record, audited_update

# A member's status only moves forward: one who clicked stays "clicked" when an open comes late.
STATUS_ORDER = [value for value, _ in CampaignMember.Status.choices]


@transaction.atomic
def campaign_create(*, actor, **fields) -> Campaign:
    campaign = Campaign(**fields)
    if campaign.owner_id is None:
        campaign.owner = actor
    campaign.full_clean()
    campaign.save()
    audit_record(instance=campaign, action="created", actor=actor)
    return campaign


@transaction.atomic
def campaign_update(*, actor, campaign: Campaign, **fields) -> Campaign:
    audited_update(actor=actor, instance=campaign, fields=fields)
    return campaign


@transaction.atomic
def campaign_members_add(*, actor, campaign: Campaign, contacts: QuerySet[Contact]) -> int:
    """Target the contacts of a queryset (a segment, a filtered list): one statement adds the
    ones not yet members and writes a line on each new member's timeline, however many there
    are. Returns how many were added."""
    members = CampaignMember._meta.db_table
    timeline = TimelineEntry._meta.db_table
    contact_table = Contact._meta.db_table
    chosen, params = contacts.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH added AS (
                INSERT INTO {members} (campaign_id, contact_id, status, added_at, updated_at)
                SELECT %s, chosen.id, %s, now(), now() FROM ({chosen}) AS chosen
                ON CONFLICT (campaign_id, contact_id) DO NOTHING
                RETURNING contact_id
            )
            INSERT INTO {timeline}
                (kind, contact_id, account_id, actor_id, occurred_at, summary, detail)
            SELECT %s, c.id, c.account_id, %s, now(), %s, ''
            FROM added JOIN {contact_table} c ON c.id = added.contact_id
            """,
            [
                campaign.pk,
                CampaignMember.Status.TARGETED,
                *params,
                TimelineEntry.Kind.RECORD,
                getattr(actor, "pk", None),
                f"Added to the campaign {campaign.name}"[:300],
            ],
        )
        return cursor.rowcount


def campaign_member_advance(*, campaign: Campaign, contact, status: str) -> bool:
    """Move a member's status forward (sent → opened → clicked ...), never back; True if it
    moved. One conditional UPDATE, so concurrent events cannot move it backwards."""
    later = STATUS_ORDER[STATUS_ORDER.index(status) :]
    return bool(
        CampaignMember.objects.filter(campaign=campaign, contact=contact)
        .exclude(status__in=later)
        .update(status=status, updated_at=timezone.now())
    )
