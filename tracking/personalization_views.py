"""Web personalization: the marketer's pages (blocks by slot, the rule editor, preview as a
contact) and the public endpoint the tenant's pages ask for their blocks (tracking.personalization
decides)."""

import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from campaigns.models import Segment
from contacts.models import LifecycleStage
from crm.access import contacts_for, require
from tracking import personalization
from tracking.models import PersonalizationBlock
from tracking.scoring import tracking_settings

CONTACT_MATCHES = 10


class BlockForm(forms.Form):
    """A block and its rules; the rule fields carry the names of the rules, so the service's
    errors land on them."""

    slot = forms.SlugField(
        max_length=50,
        help_text='The element on your pages that shows it: data-crm-slot="hero".',
    )
    name = forms.CharField(max_length=200)
    priority = forms.IntegerField(
        min_value=0,
        max_value=2_147_483_647,
        initial=100,
        help_text="Blocks of a slot are tried from the lowest number up; the first that matches "
        "wins.",
    )
    segment = forms.ModelChoiceField(
        queryset=Segment.objects.order_by("name"), required=False, empty_label="Any segment"
    )
    interests = forms.CharField(
        required=False,
        max_length=1100,
        help_text="The contact has at least one of these; separate with commas.",
    )
    stages = forms.MultipleChoiceField(
        label="Life-cycle stages",
        choices=LifecycleStage.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The contact is at one of these stages.",
    )
    score_min = forms.FloatField(label="Score at least", required=False, min_value=0)
    score_max = forms.FloatField(
        label="Score at most",
        required=False,
        min_value=0,
        help_text="The engagement score now, decay included. Leave every rule empty to make "
        "this block the slot's default, shown to everyone else.",
    )
    content = forms.CharField(
        label="HTML",
        max_length=personalization.MAX_CONTENT,
        widget=forms.Textarea(attrs={"rows": 12, "class": "letter-body"}),
        help_text="Put into the element on your pages as it is written.",
    )

    @classmethod
    def initial_for(cls, block: PersonalizationBlock) -> dict:
        rules = block.rules
        return {
            "slot": block.slot,
            "name": block.name,
            "priority": block.priority,
            "segment": rules.get("segment"),
            "interests": ", ".join(rules.get("interests", [])),
            "stages": rules.get("stages", []),
            "score_min": rules.get("score_min"),
            "score_max": rules.get("score_max"),
            "content": block.content,
        }

    def service_args(self) -> dict:
        data = self.cleaned_data
        rules = {
            "segment": data["segment"].pk if data["segment"] else None,
            "interests": data["interests"],
            "stages": data["stages"],
            "score_min": data["score_min"],
            "score_max": data["score_max"],
        }
        return {
            "slot": data["slot"],
            "name": data["name"],
            "priority": data["priority"],
            "content": data["content"],
            "rules": {key: value for key, value in rules.items() if value not in (None, "", [])},
        }


@login_required
@require("personalization.manage")
def block_list(request):
    blocks = list(personalization.block_list())
    names = personalization.segment_names(blocks)
    slots: dict[str, list] = {}
    for block in blocks:
        slots.setdefault(block.slot, []).append(
            (block, personalization.block_rules_describe(block.rules, names))
        )
    return render(request, "tracking/personalization/block_list.html", {"slots": slots})


def _form_page(request, block: PersonalizationBlock | None):
    initial = BlockForm.initial_for(block) if block else {"slot": request.GET.get("slot", "")}
    form = BlockForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            if block is None:
                saved = personalization.block_create(actor=request.user, **form.service_args())
            else:
                saved = personalization.block_update(
                    actor=request.user, block=block, **form.service_args()
                )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Block {saved.name} saved.")
            return redirect("personalization:block_list")
    return render(
        request, "tracking/personalization/block_form.html", {"form": form, "edited": block}
    )


@login_required
@require("personalization.manage")
def block_create(request):
    return _form_page(request, None)


@login_required
@require("personalization.manage")
def block_edit(request, pk):
    return _form_page(request, get_object_or_404(PersonalizationBlock, pk=pk))


@login_required
@require("personalization.manage")
@require_POST
def block_delete(request, pk):
    block = get_object_or_404(PersonalizationBlock, pk=pk)
    personalization.block_delete(actor=request.user, block=block)
    messages.success(request, f"Block {block.name} deleted.")
    return redirect("personalization:block_list")


@login_required
@require("personalization.manage")
def preview(request):
    """Per slot, the block a chosen contact would get and why, or what anonymous visitors get;
    the contact is found with a small search, as in the e-mail template preview."""
    contacts = contacts_for(request.user)
    contact_id = request.GET.get("contact", "")
    contact = (
        get_object_or_404(contacts, pk=contact_id)
        if contact_id.isdigit() and len(contact_id) < 19
        else None
    )
    query = request.GET.get("q", "").strip()[:100]
    matches = []
    if query:
        matches = contacts.filter(
            Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
            | Q(email__icontains=query)
        ).order_by("last_name", "first_name", "id")[:CONTACT_MATCHES]
    profile = None
    if contact is not None:
        profile = personalization.contact_profile(contact, settings=tracking_settings())
    choices = personalization.blocks_choose(slots=personalization.slot_list(), profile=profile)
    return render(
        request,
        "tracking/personalization/preview.html",
        {
            "contact": contact,
            "profile": profile,
            "query": query,
            "matches": matches,
            "choices": choices.values(),
        },
    )


# --- the public endpoint ----------------------------------------------------------------------


def _json(data: dict, status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    # Each visitor's answer is their own: no shared cache may keep it.
    response["Cache-Control"] = "no-store"
    return response


# No session, no CSRF cookie: the visitor id is all it reads, and it changes nothing.
@csrf_exempt
def personalize(request):
    """GET /t/personalize?vid=<visitor id>&slots=hero,sidebar -> {"hero": "<html>", ...}.

    Public: the tenant's pages call it from the browser. Answers only block content. CORS is
    granted to the tenant's registered site origins alone; another origin gets 403. `vid` is
    optional (without it, or for a browser not known as a contact, the defaults are served)."""
    settings = tracking_settings()
    origin = request.headers.get("Origin")
    if origin is not None and origin not in settings.site_origins:
        response = _json({"error": "This origin is not one of the site's registered origins."}, 403)
    elif request.method == "OPTIONS":
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Methods"] = "GET"
        response["Access-Control-Max-Age"] = "3600"
    elif request.method != "GET":
        response = _json({"error": "Use GET."}, 405)
        response["Allow"] = "GET, OPTIONS"
    else:
        response = _content(request, settings)
    if origin is not None and origin in settings.site_origins:
        response["Access-Control-Allow-Origin"] = origin
    response["Vary"] = "Origin"
    return response


def _content(request, settings) -> JsonResponse:
    raw_vid = request.GET.get("vid", "").strip()
    visitor_id = None
    if raw_vid:
        try:
            # 36 characters: the hyphenated form the snippet writes (and nothing longer).
            visitor_id = uuid.UUID(raw_vid) if len(raw_vid) == 36 else None
        except ValueError:
            visitor_id = None
        if visitor_id is None:
            return _json({"error": "vid is not a visitor id (a UUID)."}, 400)
    try:
        slots = personalization.slots_parse(request.GET.get("slots", ""))
    except ValueError as error:
        return _json({"error": str(error)}, 400)
    return _json(
        personalization.visitor_content(visitor_id=visitor_id, slots=slots, settings=settings)
    )


urlpatterns = [
    path("", block_list, name="block_list"),
    path("new/", block_create, name="block_create"),
    path("preview/", preview, name="preview"),
    path("<int:pk>/edit/", block_edit, name="block_edit"),
    path("<int:pk>/delete/", block_delete, name="block_delete"),
]
