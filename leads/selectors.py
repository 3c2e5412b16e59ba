"""Reads for lead capture; everything in the current tenant's schema."""

from django.db.models import Count, Q, QuerySet

from leads.models import FormSubmission, LeadForm

RECENT_SUBMISSIONS = 50


def lead_form_list() -> QuerySet[LeadForm]:
    """Every form with its campaign, and how many submissions it brought and awaits."""
    return (
        LeadForm.objects.select_related("campaign")
        .annotate(
            processed=Count(
                "submissions", filter=Q(submissions__status=FormSubmission.Status.PROCESSED)
            ),
            awaiting=Count(
                "submissions",
                filter=Q(submissions__status=FormSubmission.Status.AWAITING_CONFIRMATION),
            ),
        )
        .order_by("name")
    )


def lead_form_for_builder(*, pk: int) -> LeadForm | None:
    return (
        LeadForm.objects.select_related("campaign", "fallback_owner")
        .prefetch_related("round_robin_users", "territory_owners__owner")
        .filter(pk=pk)
        .first()
    )


def lead_form_public(*, key) -> LeadForm | None:
    """The active form a visitor reaches by its key, with what its visitor form is built from."""
    return (
        LeadForm.objects.select_related("campaign", "fallback_owner")
        .prefetch_related("territory_owners")
        .filter(key=key, is_active=True)
        .first()
    )


def recent_submissions(form: LeadForm) -> QuerySet[FormSubmission]:
    return (
        FormSubmission.objects.filter(form=form)
        .select_related("contact")
        .order_by("-submitted_at", "-id")[:RECENT_SUBMISSIONS]
    )
