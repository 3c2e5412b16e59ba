"""The list pages' common shape: filters, a sort, keyset pages (see crm.pagination)."""

from django.contrib import messages
from django.shortcuts import render

from crm.pagination import keyset_page

PAGE_SIZE = 50


def list_page(request, queryset, filter_class, orderings, template):
    """A filtered, sorted, keyset-paginated list. Bad filter values are reported on the page,
    which then shows the unfiltered list."""
    filters = filter_class(request.GET or None, queryset=queryset, request=request)
    rows = queryset
    total = None
    if filters.is_bound and not filters.is_valid():
        messages.error(request, "Some filters were not understood and were ignored.")
    elif filters.is_bound:
        rows = filters.qs
        # A filter set may have counted its rows on the way (capped, as pages count).
        total = getattr(filters, "known_total", None)
    ordering = orderings.get(request.GET.get("sort", ""), next(iter(orderings.values())))
    page = keyset_page(rows, ordering, cursor=request.GET.get("after"), size=PAGE_SIZE, total=total)
    if page.cursor_was_invalid:
        messages.error(request, "That page link was not valid; here is the first page.")
    params = request.GET.copy()
    params.pop("after", None)
    return render(
        request,
        template,
        {
            "page": page,
            "filters": filters,
            "sort": ordering.label,
            "orderings": orderings,
            "params": params.urlencode(),
        },
    )
