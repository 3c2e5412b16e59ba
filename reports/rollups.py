"""What the report rollups share: their state row (locked while one is brought up to date, so
two refreshes never interleave), a first count queued from the page, the line a report page
shows about how fresh they are, and their charts drawn once."""

import hashlib
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from reports.models import RollupState

REBUILD_EVERY = timedelta(days=1)
NOT_COUNTED = "These numbers are being counted for the first time: reload in a minute or two."


@contextmanager
def rollup_locked(name: str, *, rebuild: bool, now: datetime):
    """The rollup's state row, locked until the caller's work commits with it, or None when
    another refresh holds it (that one is doing the work; a rebuild waits for it instead).
    `full` on the state says whether to count everything (asked for, never done, or last done
    a day ago: what an incremental refresh cannot see is counted then). The
    caller sets the state's `marks` for the next refresh; the times are set here."""
    RollupState.objects.get_or_create(name=name)
    with transaction.atomic():
        state = (
            RollupState.objects.select_for_update(skip_locked=not rebuild).filter(name=name).first()
        )
        if state is None:
            yield None
            return
        state.full = rebuild or state.rebuilt_at is None or now - state.rebuilt_at >= REBUILD_EVERY
        yield state
        state.refreshed_at = now
        if state.full:
            state.rebuilt_at = now
        state.save()


def rollup_count_soon(task) -> None:
    """Queue a count of a rollup that was never counted (a new tenant opening a report before
    beat came by), at most once in ten minutes per tenant."""
    if cache.add(f"reports:rollup-queued:{task.name}", True, timeout=600):
        transaction.on_commit(task.delay)


def rollup_freshness(name: str, *, every_minutes: int, caveat: str, now=None) -> str | None:
    """How fresh a rollup's numbers are, for the page; None if it was never counted."""
    state = RollupState.objects.filter(name=name).first()
    if state is None or state.refreshed_at is None:
        return None
    minutes = ((now or timezone.now()) - state.refreshed_at).total_seconds() // 60
    ago = "less than a minute ago" if minutes < 1 else f"{minutes:.0f} min ago"
    when = timezone.localtime(state.refreshed_at).strftime("%Y-%m-%d %H:%M %Z")
    return f"Counted at {when} ({ago}); recounted every {every_minutes} minutes. {caveat}"


def chart_drawn_once(draw, **inputs) -> SafeString:
    """`draw(**inputs)` (a reports.charts function), kept in the cache under a digest of its
    inputs: a rollup's numbers change only when it is refreshed, and drawing the same chart
    again is a third of a page's time. The key is the inputs themselves, so a kept chart is
    never out of date."""
    digest = hashlib.sha256(repr(sorted(inputs.items())).encode()).hexdigest()
    key = f"reports:chart:{draw.__name__}:{digest}"
    svg = cache.get(key)
    if svg is None:
        svg = str(draw(**inputs))
        cache.set(key, svg, timeout=3600)
    # Drawn by reports.charts, which escapes every label and value.
    return mark_safe(svg)
