from django.conf import settings

from crm.tenants.models import Domain, Tenant


def tenant_for_host(hostname: str) -> Tenant | None:
    """The live tenant a host name routes to, or None (the template and spares are never
    reachable)."""
    suffix = f".{settings.CRM_BASE_DOMAIN}"
    if hostname.endswith(suffix):
        slug = hostname.removesuffix(suffix)
        return Tenant.objects.filter(slug=slug, kind=Tenant.Kind.LIVE).first()
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    if domain is None or domain.tenant.kind != Tenant.Kind.LIVE:
        return None
    return domain.tenant


def tenant_url(tenant: Tenant, path: str = "/") -> str:
    """The absolute URL of a page on a tenant's own host."""
    port = f":{settings.CRM_PUBLIC_PORT}" if settings.CRM_PUBLIC_PORT else ""
    return f"{settings.CRM_PUBLIC_SCHEME}://{tenant.slug}.{settings.CRM_BASE_DOMAIN}{port}{path}"


def public_url(path: str = "/") -> str:
    port = f":{settings.CRM_PUBLIC_PORT}" if settings.CRM_PUBLIC_PORT else ""
    return f"{settings.CRM_PUBLIC_SCHEME}://{settings.CRM_BASE_DOMAIN}{port}{path}"
