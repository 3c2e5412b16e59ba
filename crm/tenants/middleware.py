"""Choose the tenant (and so the schema and URLconf) from the request's host."""

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpResponseBadRequest
from django.shortcuts import render

from crm.tenants import selectors


class TenantMiddleware:
    """`<slug>.<base domain>` (or a tenant's own domain) selects that tenant's schema and URLs;
    the bare base domain is the public site. Any other host gets a plain 404 page.

    The connection is reset to the public schema first, so a request never inherits the schema
    of the previous request served by the same worker.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        connection.set_schema_to_public()
        try:
            hostname = request.get_host().split(":")[0].lower()
        except DisallowedHost:
            return HttpResponseBadRequest("Unknown host.")

        if hostname == settings.CRM_BASE_DOMAIN:
            request.tenant = None
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            return self.get_response(request)

        tenant = selectors.tenant_for_host(hostname)
        if tenant is None:
            return render(request, "tenants/no_tenant.html", {"hostname": hostname}, status=404)
        request.tenant = tenant
        connection.set_tenant(tenant)
        return self.get_response(request)
