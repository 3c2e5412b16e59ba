"""The public side of lead capture, on the tenant's host, with no login:

- `/f/<key>/`: the hosted page. It is also where the embed snippet's plain HTML form posts when
  the script cannot run, so it takes posts from any origin (no CSRF: there is no session or
  user whose authority a forged post could borrow, and anyone may fill the form anyway).
- `/f/<key>/api/`: the embed script's endpoint, answering with CORS headers any origin may read:
  GET describes the form, POST takes a submission as JSON, OPTIONS answers the preflight.
- `/f/confirm/<token>/`: the double opt-in link. Opening it shows a button, and only the
  button's post confirms: mail scanners that open every link must not confirm for the visitor.

Every post goes through leads.intake first (rate limit, size), then the honeypot, then the
fields. A filled honeypot gets the same answer as a real submission and stores nothing.
"""

import json

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from leads import intake, selectors, services
from leads.forms import HONEYPOT, SubmissionForm, json_payload_errors
from leads.models import FormSubmission, LeadForm
from tracking.identity import VISITOR_FIELD

CONFIRM_MESSAGE = (
    "Thank you! Please confirm your e-mail address: we have sent you a message with a link."
)
FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _receive(
    request, lead_form: LeadForm, form: SubmissionForm, *, visitor: str = ""
) -> FormSubmission:
    return services.submission_receive(
        form=lead_form,
        data=form.submitted_data(),
        ip=intake.client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        page_url=intake.page_url(request),
        visitor_id=visitor,
    )


# --- the hosted page --------------------------------------------------------------------------


def _hosted_page(request, lead_form, form, *, status=200, error="", retry_after=None):
    response = render(
        request,
        "leads/hosted.html",
        {"lead_form": lead_form, "form": form, "honeypot": HONEYPOT, "error": error},
        status=status,
    )
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _thanks_redirect(lead_form: LeadForm) -> HttpResponseRedirect:
    """After a submission (or a spam one that must look like it): the form's redirect, or its
    thank-you page. Under double opt-in the redirect waits for the confirmation."""
    if lead_form.double_opt_in:
        return redirect(reverse("leads:hosted_thanks", args=[lead_form.key]) + "?confirm=1")
    if lead_form.redirect_url:
        return HttpResponseRedirect(lead_form.redirect_url)
    return redirect("leads:hosted_thanks", key=lead_form.key)


@never_cache
@csrf_exempt
@xframe_options_exempt
@require_http_methods(["GET", "POST"])
def hosted_form(request, key):
    lead_form = selectors.lead_form_public(key=key)
    if lead_form is None:
        raise Http404
    if request.method == "GET":
        return _hosted_page(request, lead_form, SubmissionForm(lead_form=lead_form))

    refusal = intake.post_refusal(request)
    if refusal is not None:
        return _hosted_page(
            request,
            lead_form,
            SubmissionForm(lead_form=lead_form),
            status=refusal.status,
            error=refusal.message,
            retry_after=refusal.retry_after,
        )
    if request.content_type not in FORM_CONTENT_TYPES:
        return _hosted_page(
            request,
            lead_form,
            SubmissionForm(lead_form=lead_form),
            status=400,
            error="Send the form as an HTML form post.",
        )
    try:
        post = request.POST
    except (RequestDataTooBig, TooManyFieldsSent, MultiPartParserError):
        return _hosted_page(
            request,
            lead_form,
            SubmissionForm(lead_form=lead_form),
            status=400,
            error="The form data could not be read.",
        )
    if post.get(HONEYPOT):
        return _thanks_redirect(lead_form)
    form = SubmissionForm(post, lead_form=lead_form)
    if not form.is_valid():
        return _hosted_page(request, lead_form, form, status=400)
    _receive(request, lead_form, form, visitor=post.get(VISITOR_FIELD, ""))
    return _thanks_redirect(lead_form)


@never_cache
@xframe_options_exempt
@require_GET
def hosted_thanks(request, key):
    lead_form = selectors.lead_form_public(key=key)
    if lead_form is None:
        raise Http404
    message = CONFIRM_MESSAGE if request.GET.get("confirm") else lead_form.thank_you_message
    return render(request, "leads/thanks.html", {"lead_form": lead_form, "message": message})


# --- the embed script's endpoint ----------------------------------------------------------------


def _cors(response: HttpResponse) -> HttpResponse:
    # Any site may embed a form: no cookies or credentials are involved, so "*" is safe.
    response["Access-Control-Allow-Origin"] = "*"
    response["Access-Control-Expose-Headers"] = "Retry-After"
    return response


def _json(data: dict, status: int = 200) -> HttpResponse:
    return _cors(JsonResponse(data, status=status))


def _json_error(message: str, status: int, errors: dict | None = None) -> HttpResponse:
    body = {"error": message}
    if errors:
        body["errors"] = errors
    return _json(body, status=status)


def _json_success(lead_form: LeadForm) -> HttpResponse:
    confirm = lead_form.double_opt_in
    return _json(
        {
            "ok": True,
            "confirm": confirm,
            "message": CONFIRM_MESSAGE if confirm else lead_form.thank_you_message,
            "redirect": None if confirm else (lead_form.redirect_url or None),
        }
    )


def _definition(lead_form: LeadForm) -> HttpResponse:
    return _json(
        {
            "name": lead_form.name,
            "intro": lead_form.intro,
            "submit_label": lead_form.submit_label,
            **SubmissionForm(lead_form=lead_form).definition(),
        }
    )


def _preflight() -> HttpResponse:
    response = _cors(HttpResponse(status=204))
    response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Content-Type"
    response["Access-Control-Max-Age"] = "86400"
    return response


@never_cache
@csrf_exempt
def form_api(request, key):
    if request.method == "OPTIONS":
        return _preflight()
    if request.method not in ("GET", "POST"):
        response = _json_error("Use GET to read the form and POST to fill it.", 405)
        response["Allow"] = "GET, POST, OPTIONS"
        return response
    lead_form = selectors.lead_form_public(key=key)
    if lead_form is None:
        return _json_error("There is no such form, or it no longer takes submissions.", 404)
    if request.method == "GET":
        return _definition(lead_form)

    refusal = intake.post_refusal(request)
    if refusal is not None:
        response = _json_error(refusal.message, refusal.status)
        if refusal.retry_after:
            response["Retry-After"] = str(refusal.retry_after)
        return response
    if request.content_type != "application/json":
        return _json_error("Send the form as JSON (Content-Type: application/json).", 415)
    try:
        payload = json.loads(request.body)
    except (ValueError, RecursionError):
        return _json_error("The body is not valid JSON.", 400)
    # The tracking snippet's visitor id, when the page has the snippet (tracking.identity).
    visitor = payload.pop(VISITOR_FIELD, "") if isinstance(payload, dict) else ""
    form = SubmissionForm(lead_form=lead_form)
    malformed = json_payload_errors(payload, form.fields)
    if malformed:
        return _json_error("The submission is malformed.", 400, malformed)
    if payload.get(HONEYPOT):
        return _json_success(lead_form)
    form = SubmissionForm(payload, lead_form=lead_form)
    if not form.is_valid():
        errors = {
            name: [e["message"] for e in errs] for name, errs in form.errors.get_json_data().items()
        }
        return _json_error("Some fields need attention.", 400, errors)
    _receive(request, lead_form, form, visitor=visitor if isinstance(visitor, str) else "")
    return _json_success(lead_form)


# --- double opt-in ----------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def confirm(request, token):
    submission = services.confirmation_token_read(token)
    if submission is None:
        return render(request, "leads/confirm_invalid.html", status=400)
    lead_form = submission.form
    if request.method == "POST":
        services.submission_confirm(submission=submission)
        if lead_form.redirect_url:
            return HttpResponseRedirect(lead_form.redirect_url)
    elif submission.status != FormSubmission.Status.PROCESSED:
        return render(request, "leads/confirm.html", {"lead_form": lead_form})
    return render(
        request,
        "leads/thanks.html",
        {"lead_form": lead_form, "message": lead_form.thank_you_message, "confirmed": True},
    )
