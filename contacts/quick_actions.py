"""The quick actions of a record's page (log an activity, add a task), the same for a contact,
an account or an opportunity: the form is checked, the service files the activity or task
against the record, and the user is sent back to the record's page, told what happened or
what was wrong."""

from django.contrib import messages
from django.shortcuts import redirect

from contacts import services
from contacts.forms import ActivityForm, TaskForm
from crm.forms import report_errors


def log_activity(request, *, back: str, **record):
    """`record`: the contact, account and/or opportunity, as services.activity_log takes them;
    the caller has checked that the user may see it."""
    form = ActivityForm(request.POST)
    if form.is_valid():
        services.activity_log(actor=request.user, **record, **form.cleaned_data)
        messages.success(request, f"{form.cleaned_data['kind'].title()} logged.")
    else:
        report_errors(request, form)
    return redirect(back)


def add_task(request, *, back: str, **record):
    """`record`: as for log_activity, as services.task_create takes it."""
    form = TaskForm(request.POST)
    if form.is_valid():
        services.task_create(actor=request.user, **record, **form.cleaned_data)
        messages.success(request, "Task added.")
    else:
        report_errors(request, form)
    return redirect(back)
