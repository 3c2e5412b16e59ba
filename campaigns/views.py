from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from campaigns import selectors
from crm.access import require

PAGE_SIZE = 50


@login_required
@require("campaigns.view")
def campaign_list(request):
    page = Paginator(selectors.campaign_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "campaigns/campaign_list.html", {"page": page})
