from crm.access import Allowed, navigation_for


def shell(request):
    """The app shell's navigation (only the modules the user's role may open), and `may` for
    templates to show only the actions the role may take.

    The public site has no users table, so the user is only looked at on a tenant's host.
    """
    user = getattr(request, "user", None)
    if getattr(request, "tenant", None) is None or user is None or not user.is_authenticated:
        return {}
    return {
        "navigation": navigation_for(request.user),
        "tenant": request.tenant,
        "may": Allowed(request.user),
    }
