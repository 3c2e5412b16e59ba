from django import forms
from django.contrib.auth.password_validation import validate_password

from crm.tenants.services import owner_email_validate, slug_validate


class SignupForm(forms.Form):
    company = forms.CharField(label="Company name", max_length=200)
    slug = forms.CharField(
        label="Workspace address",
        max_length=30,
        help_text="Letters, digits and hyphens; your CRM will live at <slug>.",
    )
    full_name = forms.CharField(label="Your name", max_length=150)
    email = forms.EmailField(label="Work e-mail")
    password = forms.CharField(widget=forms.PasswordInput, strip=False)

    def clean_slug(self):
        slug = self.cleaned_data["slug"].strip().lower()
        slug_validate(slug)
        return slug

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        owner_email_validate(email)
        return email

    def clean_password(self):
        password = self.cleaned_data["password"]
        validate_password(password)
        return password
