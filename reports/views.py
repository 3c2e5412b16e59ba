"""The reports index. Each report lives in a module of its own and adds itself to REPORTS."""

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse

from crm.access import can, require


@dataclass(frozen=True)
class Report:
    title: str
    url_name: str
    action: str
    description: str

    @property
    def url(self) -> str:
        return reverse(self.url_name)


REPORTS: list[Report] = []


@login_required
@require("reports.marketing")
def report_index(request):
    return render(
        request,
        "reports/index.html",
        {"reports": [r for r in REPORTS if can(request.user, r.action)]},
    )
