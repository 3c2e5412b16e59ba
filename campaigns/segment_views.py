"""Segment pages: the list, the rule builder with its live count and sample, a segment's page,
freezing and deleting. The builder posts each condition as a row of form fields
(`row-<n>-group`, `row-<n>-field`, `row-<n>-operator`, `row-<n>-value`) and each group's
operator as `group-<n>-op`; `rules_from_post` turns them into the rules JSON, which
campaigns.segments validates and compiles."""

import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from campaigns import segments
from campaigns.models import Campaign, Segment
from crm.access import require
from crm.users.models import User
from leads.models import LeadForm

ROW = re.compile(r"^row-(\d{1,6})-field$")
GROUP = re.compile(r"^group-(\d{1,6})-op$")


def rules_from_post(post) -> dict:
    """The rules as posted, not yet validated: every row becomes a condition in the top group
    or in the group it names (a row naming a group that was not posted lands in a group of its
    own with no operator, which validation refuses)."""
    groups = {
        int(m.group(1)): {"op": post.get(key), "rules": []}
        for key in post
        if (m := GROUP.match(key))
    }
    top = {"op": post.get("op"), "rules": []}
    for n in sorted(int(m.group(1)) for key in post if (m := ROW.match(key))):
        operator = post.get(f"row-{n}-operator")
        values = post.getlist(f"row-{n}-value")
        condition = {
            "field": post.get(f"row-{n}-field"),
            "operator": operator,
            # "is one of" is a list even when one choice is picked.
            "value": values if operator == "in" else (values or [None])[0],
        }
        group = post.get(f"row-{n}-group", "")
        if not group:
            top["rules"].append(condition)
        elif group.isdigit() and int(group) in groups:
            groups[int(group)]["rules"].append(condition)
        else:
            top["rules"].append({"op": None, "rules": [condition]})
    top["rules"].extend(groups[n] for n in sorted(groups))
    return top


def _builder_schema() -> dict:
    """What the builder's script needs to draw rows: fields, their operators and choices."""
    dynamic = {
        "owners": [
            [str(pk), name]
            for pk, name in User.objects.filter(is_active=True)
            .order_by("full_name")
            .values_list("pk", "full_name")
        ],
        "campaigns": [
            [str(pk), name]
            for pk, name in Campaign.objects.order_by("-created_at").values_list("pk", "name")[:500]
        ],
        "forms": [
            [str(pk), name]
            for pk, name in LeadForm.objects.order_by("name").values_list("pk", "name")
        ],
    }
    return {
        "fields": {
            name: {
                "label": spec.label,
                "operators": [
                    [op, segments.OPERATOR_LABELS[op], kind] for op, kind in spec.operators.items()
                ],
                "choices": dynamic[spec.dynamic_choices]
                if spec.dynamic_choices
                else [[str(v), label] for v, label in spec.choices],
            }
            for name, spec in segments.FIELDS.items()
        }
    }


def _editor(request, segment: Segment | None):
    """The builder page: on GET the segment's rules; on POST validate and save, or show the
    rules as posted with every problem listed."""
    data = request.POST if request.method == "POST" else None
    errors: list[str] = []
    if data is None:
        name = segment.name if segment else ""
        description = segment.description if segment else ""
        rules = segment.rules if segment else {"op": "and", "rules": []}
    else:
        name = data.get("name", "").strip()
        description = data.get("description", "").strip()
        rules = rules_from_post(data)
        try:
            fields = {"name": name, "description": description, "rules": rules}
            if segment is None:
                segment = segments.segment_create(actor=request.user, **fields)
            else:
                segments.segment_update(actor=request.user, segment=segment, **fields)
        except ValidationError as error:
            errors = [
                f"{'' if key in ('rules', '__all__') else key.title() + ': '}{message}"
                for key, found in (
                    error.message_dict.items()
                    if hasattr(error, "error_dict")
                    else [("rules", error.messages)]
                )
                for message in found
            ]
        else:
            messages.success(request, f"{segment.name} saved.")
            return redirect("campaigns:segment_detail", pk=segment.pk)
    return render(
        request,
        "campaigns/segments/segment_form.html",
        {
            "segment": segment if segment and segment.pk else None,
            "name": name,
            "description": description,
            "rules": rules,
            "schema": _builder_schema(),
            "errors": errors,
        },
    )


@login_required
@require("segments.manage")
def segment_list(request):
    return render(
        request, "campaigns/segments/segment_list.html", {"segments": segments.segment_list()}
    )


@login_required
@require("segments.manage")
def segment_create(request):
    return _editor(request, None)


@login_required
@require("segments.manage")
def segment_edit(request, pk):
    return _editor(request, get_object_or_404(Segment, pk=pk))


@login_required
@require("segments.manage")
@require_POST
def segment_preview(request):
    """The live count and sample for the rules being edited (htmx, on every change)."""
    context = {"errors": [], "count": None, "sample": []}
    try:
        rules = segments.rules_clean(rules_from_post(request.POST))
    except ValidationError as error:
        context["errors"] = error.messages
    else:
        context["count"] = segments.segment_count(rules, user=request.user)
        context["sample"] = segments.segment_sample(rules, user=request.user)
    return render(request, "campaigns/segments/_preview.html", context)


@login_required
@require("segments.manage")
def segment_detail(request, pk):
    segment = get_object_or_404(Segment.objects.select_related("created_by"), pk=pk)
    count, sample = segments.segment_summary(segment, user=request.user)
    return render(
        request,
        "campaigns/segments/segment_detail.html",
        {
            "segment": segment,
            "count": count,
            "sample": sample,
            "conditions": segments.rules_describe(segment.rules),
        },
    )


@login_required
@require("segments.manage")
@require_POST
def segment_freeze(request, pk):
    segment = get_object_or_404(Segment, pk=pk)
    try:
        added = segments.segment_freeze(actor=request.user, segment=segment)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{segment.name} is now a static list of {added:,} contacts.")
    return redirect("campaigns:segment_detail", pk=pk)


@login_required
@require("segments.manage")
@require_POST
def segment_delete(request, pk):
    segment = get_object_or_404(Segment, pk=pk)
    segments.segment_delete(actor=request.user, segment=segment)
    messages.success(request, f"{segment.name} deleted.")
    return redirect("campaigns:segment_list")
