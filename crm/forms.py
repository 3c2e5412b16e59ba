"""What the browser's forms share."""

from django.contrib import messages


def report_errors(request, form) -> None:
    """Show a quick action's field errors as messages on the page it returns to (the form
    itself is not re-displayed there)."""
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        messages.error(request, f"{label}: {' '.join(errors)}" if label else " ".join(errors))
