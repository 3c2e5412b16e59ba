from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from contacts.selectors import my_day, shell_counts


@login_required
def home(request):
    """My day: tasks due and overdue, and recent activity on the user's accounts."""
    return render(
        request,
        "home.html",
        {
            "counts": shell_counts(request.user),
            "day": my_day(request.user, today=timezone.localdate()),
        },
    )


def healthz(request):
    """Answers 200 when the app can reach its database (used by `make run` and compose)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")
