"""Pages to find duplicate contacts and accounts, merge two of them after a side-by-side preview,
and undo a merge from the journal. Only roles allowed `records.merge`, only on records in the
user's reach (others give 404)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from contacts import merging
from contacts.models import RecordKind
from crm.access import require

KINDS = {"contacts": RecordKind.CONTACT, "accounts": RecordKind.ACCOUNT}
DETAIL = {
    RecordKind.CONTACT: "contacts:contact_detail",
    RecordKind.ACCOUNT: "contacts:account_detail",
}


def _kind(slug: str) -> str:
    if slug not in KINDS:
        raise Http404
    return KINDS[slug]


def _positive_int(value) -> int | None:
    return int(value) if value and str(value).isdigit() else None


class MergeForm(forms.Form):
    """One choice per field where the two records differ: whose value the kept record takes
    (the kept record's own when none is given)."""

    def choices(self) -> dict[str, str]:
        return {name: side for name, side in self.cleaned_data.items() if side}

    def __init__(self, *args, preview: merging.MergePreview, **kwargs):
        super().__init__(*args, **kwargs)
        for field in preview.differing:
            self.fields[field.name] = forms.ChoiceField(
                label=field.label,
                choices=[("kept", field.kept or "(empty)"), ("merged", field.merged or "(empty)")],
                initial="kept",
                required=False,
                widget=forms.RadioSelect,
            )


@login_required
@require("records.merge")
def duplicates(request, kind):
    """Pairs that look like the same customer, a bounded batch at a time ("show more")."""
    record_kind = _kind(kind)
    after = _positive_int(request.GET.get("after"))
    page = merging.duplicate_pairs(request.user, record_kind, after=after)
    return render(
        request,
        "contacts/merge/duplicates.html",
        {"kind": kind, "record_kind": record_kind, "page": page, "after": after},
    )


def _record_or_gone(request, kind: str, pk: int):
    """The record, or None after telling the user it was merged away; 404 if never theirs."""
    record = merging.reach(request.user, kind).filter(pk=pk).first()
    if record is None:
        journal = merging.merged_away(request.user, kind, pk)
        if journal is None:
            raise Http404
        messages.error(
            request, f"That record was already merged ({journal.summary}); nothing was changed."
        )
    return record


@login_required
@require("records.merge")
def merge_review(request, kind, kept, merged):
    """Two records side by side: choose per field which value stays, see what will move, merge."""
    record_kind = _kind(kind)
    if kept == merged:
        messages.error(request, "A record cannot be merged with itself.")
        return redirect("contacts:duplicates", kind=kind)
    kept_record = _record_or_gone(request, record_kind, kept)
    merged_record = _record_or_gone(request, record_kind, merged)
    if kept_record is None or merged_record is None:
        return redirect("contacts:duplicates", kind=kind)
    preview = merging.merge_preview(kind=record_kind, kept=kept_record, merged=merged_record)
    form = MergeForm(request.POST or None, preview=preview)
    if request.method == "POST" and form.is_valid():
        service = (
            merging.contact_merge if record_kind == RecordKind.CONTACT else merging.account_merge
        )
        try:
            service(
                actor=request.user, kept=kept_record, merged=merged_record, fields=form.choices()
            )
        except merging.MergeRefused as refused:
            messages.error(request, f"{refused} Nothing was changed.")
            return redirect("contacts:duplicates", kind=kind)
        messages.success(
            request,
            f"{merging.display_name(merged_record)} was merged into this record. "
            "The merge journal can undo it.",
        )
        return redirect(DETAIL[record_kind], pk=kept)
    return render(
        request,
        "contacts/merge/review.html",
        {"kind": kind, "preview": preview, "form": form},
    )


@login_required
@require("records.merge")
def journal(request):
    """The merges of records the user may see, newest first, with an undo for each."""
    before = _positive_int(request.GET.get("before"))
    entries = merging.merge_journal(request.user, before=before)
    return render(
        request,
        "contacts/merge/journal.html",
        {
            "entries": entries,
            "before": before,
            "next_before": entries[-1].pk if len(entries) == merging.JOURNAL_PAGE else None,
        },
    )


@login_required
@require("records.merge")
@require_POST
def undo(request, pk):
    entry = get_object_or_404(merging.merge_journal_for(request.user), pk=pk)
    try:
        merging.merge_undo(actor=request.user, journal=entry)
    except merging.MergeRefused as refused:
        messages.error(request, f"{refused} Nothing was changed.")
    else:
        messages.success(request, f"Undone: {entry.summary}. Both records are back.")
    return redirect("contacts:merge_journal")
