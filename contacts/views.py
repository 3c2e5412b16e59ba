from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from contacts import selectors
from crm.access import require

PAGE_SIZE = 50


@login_required
@require("accounts.view")
def account_list(request):
    page = Paginator(selectors.account_list(request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "contacts/account_list.html", {"page": page})


@login_required
@require("contacts.view")
def contact_list(request):
    page = Paginator(selectors.contact_list(request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "contacts/contact_list.html", {"page": page})
