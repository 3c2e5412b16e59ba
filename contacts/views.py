from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from contacts import quick_actions, selectors, services
from contacts.calendar import feed as ical_feed
from contacts.export import ACCOUNT_COLUMNS, CONTACT_COLUMNS, export_response
from contacts.filters import AccountFilter, ContactFilter
from contacts.forms import (
    AccountForm,
    ActivityForm,
    AppointmentForm,
    ContactForm,
    EmailForm,
    TaskForm,
)
from crm.access import require, tasks_for
from crm.forms import report_errors
from crm.lists import list_page
from crm.pagination import Ordering
from crm.users import services as users_services
from crm.users.models import User
from tracking.models import TimelineEntry

CONTACT_ORDERINGS = {
    "name": Ordering("name", ("last_name", "first_name", "id")),
    "newest": Ordering("newest", ("created_at", "id"), descending=True),
    "updated": Ordering("updated", ("updated_at", "id"), descending=True),
}
ACCOUNT_ORDERINGS = {
    "name": Ordering("name", ("name", "id")),
    "newest": Ordering("newest", ("created_at", "id"), descending=True),
}


@login_required
@require("accounts.view")
def account_list(request):
    return list_page(
        request,
        selectors.account_list(request.user),
        AccountFilter,
        ACCOUNT_ORDERINGS,
        "contacts/account_list.html",
    )


@login_required
@require("contacts.view")
def contact_list(request):
    return list_page(
        request,
        selectors.contact_list(request.user),
        ContactFilter,
        CONTACT_ORDERINGS,
        "contacts/contact_list.html",
    )


@login_required
@require("accounts.view")
def account_options(request):
    """Suggestions for an account picker (crm.pickers) as the user types."""
    text = request.GET.get(request.GET.get("field", ""), "")
    return render(
        request,
        "contacts/_account_options.html",
        {"accounts": selectors.account_suggestions(request.user, text)},
    )


@login_required
@require("contacts.view")
def contact_options(request):
    """Suggestions for a contact picker (crm.pickers) as the user types."""
    text = request.GET.get(request.GET.get("field", ""), "")
    return render(
        request,
        "contacts/_contact_options.html",
        {"contacts": selectors.contact_suggestions(request.user, text)},
    )


@login_required
def search(request):
    """The shell's search box: a dropdown of results while typing (htmx), a page on Enter."""
    results = selectors.search(request.user, request.GET.get("q", ""))
    template = "contacts/_search_results.html" if request.htmx else "contacts/search.html"
    return render(request, template, {"results": results})


def _timeline(request, **record) -> dict:
    """A contact's or account's timeline page, as the request asks for it: of one kind (an
    unknown one shows all) and from the newest entry or from an older page's cursor."""
    kind = request.GET.get("kind") or None
    kind = kind if kind in TimelineEntry.Kind.values else None
    page = selectors.timeline(**record, kind=kind, older=request.GET.get("older"))
    if page.cursor_was_invalid:
        messages.error(request, "That link to older entries was not valid; here are the newest.")
    return {
        "timeline": page.rows,
        "timeline_older": page.next_cursor,
        "kinds": selectors.timeline_kinds(**record),
        "kind": kind,
    }


@login_required
@require("contacts.view")
def contact_detail(request, pk):
    """The 360-degree page: everything about one person, newest first."""
    contact = selectors.contact_get(request.user, pk)
    return render(
        request,
        "contacts/contact_detail.html",
        {
            "contact": contact,
            **_timeline(request, contact=contact),
            "tasks": selectors.open_tasks(contact=contact),
            "audit": selectors.audit_trail(request.user, contact),
            "activity_form": ActivityForm(initial={"kind": "call"}),
            "task_form": TaskForm(),
            "email_form": EmailForm(),
            "appointment_form": AppointmentForm(user=request.user),
            "appointments": selectors.contact_appointments(
                request.user, contact, now=timezone.now()
            ),
        },
    )


@login_required
@require("contacts.view")
def contact_create(request):
    form = ContactForm(request.POST or None, user=request.user)
    duplicates = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if not request.POST.get("confirm"):
            duplicates = selectors.contact_duplicates(
                request.user,
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                account=data["account"],
            )
        if not duplicates:
            contact = services.contact_create(actor=request.user, **data)
            messages.success(request, f"{contact.full_name} was added.")
            return redirect("contacts:contact_detail", pk=contact.pk)
    return render(request, "contacts/contact_form.html", {"form": form, "duplicates": duplicates})


@login_required
@require("contacts.view")
def contact_edit(request, pk):
    contact = selectors.contact_get(request.user, pk)
    form = ContactForm(request.POST or None, instance=contact, user=request.user)
    if request.method == "POST" and form.is_valid():
        services.contact_update(actor=request.user, contact=contact, **form.cleaned_data)
        messages.success(request, "Saved.")
        return redirect("contacts:contact_detail", pk=contact.pk)
    return render(request, "contacts/contact_form.html", {"form": form, "contact": contact})


@login_required
@require("contacts.view")
@require_POST
def contact_log_activity(request, pk):
    contact = selectors.contact_get(request.user, pk)
    back = reverse("contacts:contact_detail", args=[contact.pk])
    return quick_actions.log_activity(request, back=back, contact=contact)


@login_required
@require("contacts.view")
@require_POST
def contact_add_task(request, pk):
    contact = selectors.contact_get(request.user, pk)
    back = reverse("contacts:contact_detail", args=[contact.pk])
    return quick_actions.add_task(request, back=back, contact=contact)


@login_required
@require("contacts.view")
@require_POST
def task_done(request, pk):
    """Tick a task off; a task on no record the user may see is a 404, like a missing one."""
    task = get_object_or_404(tasks_for(request.user).select_related("contact", "account"), pk=pk)
    services.task_set_done(actor=request.user, task=task, done=request.POST.get("done") != "0")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "home"
    return redirect(back)


@login_required
@require("accounts.view")
def account_detail(request, pk):
    """An account's page: its details, its contacts, its opportunities and all their history."""
    account = selectors.account_get(request.user, pk)
    return render(
        request,
        "contacts/account_detail.html",
        {
            "account": account,
            "contacts": selectors.contact_list(request.user).filter(account=account)[:100],
            "opportunities": selectors.account_opportunities(request.user, account),
            **_timeline(request, account=account),
            "tasks": selectors.open_tasks(account=account),
            "audit": selectors.audit_trail(request.user, account),
            "activity_form": ActivityForm(initial={"kind": "call"}),
            "task_form": TaskForm(),
        },
    )


@login_required
@require("accounts.view")
@require_POST
def account_log_activity(request, pk):
    account = selectors.account_get(request.user, pk)
    back = reverse("contacts:account_detail", args=[account.pk])
    return quick_actions.log_activity(request, back=back, account=account)


@login_required
@require("accounts.view")
@require_POST
def account_add_task(request, pk):
    account = selectors.account_get(request.user, pk)
    back = reverse("contacts:account_detail", args=[account.pk])
    return quick_actions.add_task(request, back=back, account=account)


@login_required
@require("accounts.view")
def account_create(request):
    form = AccountForm(request.POST or None, user=request.user)
    duplicates = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if not request.POST.get("confirm"):
            duplicates = selectors.account_duplicates(
                request.user, name=data["name"], domain=data["domain"]
            )
        if not duplicates:
            account = services.account_create(actor=request.user, **data)
            messages.success(request, f"{account.name} was added.")
            return redirect("contacts:account_detail", pk=account.pk)
    return render(request, "contacts/account_form.html", {"form": form, "duplicates": duplicates})


@login_required
@require("accounts.view")
def account_edit(request, pk):
    account = selectors.account_get(request.user, pk)
    form = AccountForm(request.POST or None, instance=account, user=request.user)
    if request.method == "POST" and form.is_valid():
        services.account_update(actor=request.user, account=account, **form.cleaned_data)
        messages.success(request, "Saved.")
        return redirect("contacts:account_detail", pk=account.pk)
    return render(request, "contacts/account_form.html", {"form": form, "account": account})


@login_required
def calendar(request):
    """The user's upcoming appointments and the address of their private calendar feed."""
    feed_path = reverse(
        "contacts:calendar_feed",
        kwargs={"token": users_services.user_calendar_token(user=request.user)},
    )
    return render(
        request,
        "contacts/calendar.html",
        {
            "appointments": selectors.upcoming_appointments(request.user, now=timezone.now()),
            "feed_url": request.build_absolute_uri(feed_path),
        },
    )


def calendar_feed(request, token):
    """The private iCalendar feed; the unguessable token in the URL is its only key."""
    user = get_object_or_404(User, calendar_token=token, is_active=True)
    body = ical_feed(user=user, tenant=request.tenant, host=request.get_host(), now=timezone.now())
    return HttpResponse(body, content_type="text/calendar; charset=utf-8")


@login_required
@require("contacts.view")
@require_POST
def contact_book_appointment(request, pk):
    contact = selectors.contact_get(request.user, pk)
    form = AppointmentForm(request.POST, user=request.user)
    if form.is_valid():
        fields = dict(form.cleaned_data)
        others = [other for other in fields.pop("contacts") if other != contact]
        services.appointment_create(
            actor=request.user, contacts=[contact, *others], account=contact.account, **fields
        )
        messages.success(request, "Appointment booked.")
    else:
        report_errors(request, form)
    return redirect("contacts:contact_detail", pk=contact.pk)


@login_required
@require("contacts.view")
def contact_export(request):
    """The contact list as CSV, with the list's filters, only what the user may see."""
    return export_response(
        request, selectors.contact_list(request.user), ContactFilter, CONTACT_COLUMNS, "contacts"
    )


@login_required
@require("accounts.view")
def account_export(request):
    return export_response(
        request, selectors.account_list(request.user), AccountFilter, ACCOUNT_COLUMNS, "accounts"
    )


@login_required
@require("contacts.view")
@require_POST
def contact_send_email(request, pk):
    contact = selectors.contact_get(request.user, pk)
    form = EmailForm(request.POST)
    if not form.is_valid():
        report_errors(request, form)
    else:
        try:
            services.contact_email(actor=request.user, contact=contact, **form.cleaned_data)
        except services.EmailRefused as refused:
            messages.error(request, str(refused))
        else:
            messages.success(request, f"E-mail to {contact.email} is on its way.")
    return redirect("contacts:contact_detail", pk=contact.pk)
