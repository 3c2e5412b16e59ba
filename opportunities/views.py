from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from crm.access import require
from opportunities import selectors

PAGE_SIZE = 50


@login_required
@require("opportunities.view")
def opportunity_list(request):
    page = Paginator(selectors.opportunity_list(request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "opportunities/opportunity_list.html", {"page": page})
