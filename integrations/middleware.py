"""Tells API callers their rate-limit allowance on every answer, refusals included."""


class RateLimitHeadersMiddleware:
    """Adds `X-RateLimit-Limit`, `-Remaining` and `-Reset` (seconds until the window ends) to
    responses of API calls that `integrations.ratelimit.ApiRateThrottle` counted: with the API's
    viewsets, every call, refusals included, but those refused before counting (no or bad
    credentials, or a session call failing its CSRF check), which carry none."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        allowance = getattr(request, "api_allowance", None)
        if allowance is not None:
            response["X-RateLimit-Limit"] = str(allowance.limit)
            response["X-RateLimit-Remaining"] = str(allowance.remaining)
            response["X-RateLimit-Reset"] = str(allowance.reset_seconds)
        return response
