"""Quotas: what each salesperson should close in a month, quarter or year (managers set them;
the forecast divides closed won by them). Writes are audited like every other change."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from reports.filters import Period
from reports.models import Quota
from tracking.services import audit_record, audited_update


@transaction.atomic
def quota_set(*, actor, user, period: Period, amount: Decimal) -> Quota:
    """Set `user`'s quota for `period` (replacing the one set before). The caller has checked
    that the actor may (crm.access.people_for)."""
    if amount < 0:
        raise ValidationError({"amount": "A quota cannot be negative."})
    key = {"user": user, "period_kind": period.kind, "period_start": period.start}
    quota = Quota.objects.filter(**key).first()
    if quota is None:
        quota = Quota(**key, amount=amount)
        quota.full_clean(validate_constraints=False)
        try:
            # Someone setting the same quota at the same moment wins the insert; this one
            # then updates theirs.
            with transaction.atomic():
                quota.save()
        except IntegrityError:
            quota = Quota.objects.get(**key)
        else:
            audit_record(instance=quota, action="created", actor=actor)
            return quota
    audited_update(actor=actor, instance=quota, fields={"amount": amount})
    return quota
