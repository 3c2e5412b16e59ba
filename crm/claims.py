"""A background job's claim on its own row, for Celery tasks that run at least once (late
acknowledgement) and must do their work once: CSV imports, letter batches."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from django.db.models import Model, QuerySet


@contextmanager
def claimed(pending: QuerySet, *, running: str, related: tuple[str, ...] = ()) -> Iterator:
    """Mark the job `pending` holds (its row, among the statuses it may run in) `running`, and
    yield it locked for a transaction that lasts the block; None when there is nothing to run.

    The row lock is the claim. A second delivery of the task while the first runs waits for
    the lock at the mark, then finds the job finished and gets None. A worker killed mid-way
    rolls back its work and releases the lock, and the redelivered task starts again from the
    beginning: no job is stuck half-way or done twice. The mark is only what pages show."""
    pending.update(status=running)
    with transaction.atomic():
        job: Model | None = (
            pending.select_for_update(skip_locked=True, of=("self",))
            .select_related(*related)
            .first()
        )
        yield job
