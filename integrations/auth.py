"""How the REST API knows who calls: `Authorization: Bearer <API key>`, the key acting as its
user (so `crm.access` applies the user's role and reach), and read-only keys that may not write.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import SAFE_METHODS, BasePermission

from integrations.keys import api_key_authenticate
from integrations.models import ApiKey

SCHEME = "Bearer"


class ApiKeyAuthentication(BaseAuthentication):
    """Finds the key in the current tenant's schema only: a key of another tenant is unknown
    here, and gets the same 401 as a wrong or revoked one."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != SCHEME.lower().encode():
            # No key given (or another scheme): the session may still authenticate the call.
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(
                "Malformed Authorization header: expected 'Bearer <API key>' with no spaces "
                "in the key."
            )
        try:
            key_text = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("The API key contains characters no key has.") from exc
        key = api_key_authenticate(key_text)
        if key is None:
            raise AuthenticationFailed("Invalid or revoked API key.")
        return key.user, key

    def authenticate_header(self, request):
        # Being the first authentication class, this makes DRF answer 401 (not 403) without
        # credentials, and tell the client how to authenticate.
        return SCHEME


class ReadOnlyKeyPermission(BasePermission):
    """A read-only key may read what its user may read, and write nothing."""

    message = "This API key is read-only."

    def has_permission(self, request, view):
        key = request.auth
        return not (isinstance(key, ApiKey) and key.read_only) or request.method in SAFE_METHODS


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the bearer scheme in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            **build_bearer_security_scheme_object(header_name="Authorization", token_prefix=SCHEME),
            "description": "An API key made by the tenant's admin (Settings → API keys), sent as "
            "`Authorization: Bearer <key>`.",
        }
