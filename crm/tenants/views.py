from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tenants.utils import schema_context

from crm.tenants.forms import SignupForm
from crm.tenants.selectors import tenant_url
from crm.tenants.services import tenant_provision
from crm.users.models import User
from crm.users.tokens import welcome_token_generator


def signup(request):
    """The public "create your workspace" page."""
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            tenant = tenant_provision(
                slug=data["slug"],
                name=data["company"],
                admin_email=data["email"],
                admin_password=data["password"],
                admin_name=data["full_name"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        except IntegrityError:
            # Another sign-up took the same address between validation and insert.
            form.add_error("slug", "This address is taken; choose another.")
        else:
            with schema_context(tenant.schema_name):
                user = User.objects.get(email=data["email"])
                path = reverse(
                    "users:welcome",
                    kwargs={
                        "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                        "token": welcome_token_generator.make_token(user),
                    },
                    urlconf="crm.urls_tenant",
                )
            return redirect(tenant_url(tenant, path))
    return render(request, "tenants/signup.html", {"form": form})
