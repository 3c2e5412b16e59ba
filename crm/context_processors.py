from crm.access import navigation_for


def shell(request):
    """The app shell's navigation: only the modules the user's role may open.

    The public site has no users table, so the user is only looked at on a tenant's host.
    """
    if getattr(request, "tenant", None) is None or not request.user.is_authenticated:
        return {}
    return {"navigation": navigation_for(request.user), "tenant": request.tenant}
