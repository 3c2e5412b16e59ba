"""Tells every answer how long Django took to make it, in the standard `Server-Timing` header:
browser devtools show it next to the network time, and the benchmarks read it to tell the
server's own time from the time a request waited on the clients' side of loopback."""

import time


class ServerTimingMiddleware:
    """Adds `Server-Timing: app;dur=<milliseconds>` to every response: from the request reaching
    this middleware (the outermost) to the response leaving it. A view that streams its body is
    timed up to its first byte only."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response
