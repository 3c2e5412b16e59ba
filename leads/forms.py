"""Forms validate input; leads.services does the writing.

`LeadFormForm` and `TerritoryOwnerFormSet` are the marketer's builder. `SubmissionForm` is what
a visitor fills: built from a lead form's settings, it validates the hosted page's posts and the
embed script's JSON alike, and describes itself to that script (`definition()`).
"""

from django import forms

from campaigns.models import Campaign
from contacts.models import Account, Contact
from crm.users.models import User
from leads.models import MAX_INTERESTS, ContactField, LeadForm

# A hidden field people never see and bots fill in: a post with it filled is spam.
HONEYPOT = "website"
INTERESTS_LABEL = "I am interested in"

# Each contact field a form may ask for: its length limit (the column it is stored in) and the
# input the browser should offer.
INPUTS = {
    ContactField.FIRST_NAME: (Contact, "first_name", "text", "given-name"),
    ContactField.LAST_NAME: (Contact, "last_name", "text", "family-name"),
    ContactField.PHONE: (Contact, "phone", "tel", "tel"),
    ContactField.TITLE: (Contact, "title", "text", "organization-title"),
    ContactField.COMPANY: (Account, "name", "text", "organization"),
    ContactField.TERRITORY: (Contact, "territory", "text", "off"),
}
EMAIL_MAX_LENGTH = Contact._meta.get_field("email").max_length


def _active_users():
    return User.objects.filter(is_active=True).order_by("full_name")


class InterestsField(forms.CharField):
    """Interests written one per line, as a list."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        lines = [line.strip() for line in (super().to_python(value) or "").splitlines()]
        interests = [line for line in lines if line]
        for interest in interests:
            if len(interest) > 50:
                raise forms.ValidationError(f"“{interest[:20]}…” is longer than 50 characters.")
        if len(interests) > MAX_INTERESTS:
            raise forms.ValidationError(f"At most {MAX_INTERESTS} interests.")
        return interests


class LeadFormForm(forms.ModelForm):
    contact_fields = forms.MultipleChoiceField(
        label="Fields to ask for (besides the e-mail address, which every form asks for)",
        choices=ContactField.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    required_fields = forms.MultipleChoiceField(
        label="Required fields",
        choices=ContactField.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    interests = InterestsField(
        label="Interest checkboxes",
        required=False,
        help_text="One per line; what a visitor ticks is added to the contact's interests.",
    )
    redirect_url = forms.URLField(
        label="Redirect to",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="An http or https address to send visitors to instead of the thank-you message.",
    )

    class Meta:
        model = LeadForm
        fields = [
            "name",
            "is_active",
            "campaign",
            "intro",
            "contact_fields",
            "required_fields",
            "interests",
            "submit_label",
            "thank_you_message",
            "redirect_url",
            "double_opt_in",
            "assignment",
            "round_robin_users",
            "fallback_owner",
            "follow_up_days",
        ]
        labels = {
            "is_active": "Active",
            "submit_label": "Button text",
            "thank_you_message": "Thank-you message",
            "double_opt_in": "Double opt-in",
            "assignment": "Owner of new contacts",
            "round_robin_users": "Round-robin among",
            "fallback_owner": "Fallback owner",
            "follow_up_days": "Follow-up due after (days)",
        }
        widgets = {
            "intro": forms.Textarea(attrs={"rows": 2}),
            "thank_you_message": forms.Textarea(attrs={"rows": 2}),
            "assignment": forms.RadioSelect,
            "round_robin_users": forms.CheckboxSelectMultiple,
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["campaign"].queryset = Campaign.objects.order_by("name")
        self.fields["round_robin_users"].queryset = _active_users()
        self.fields["fallback_owner"].queryset = _active_users()
        self.fields["fallback_owner"].required = True

    def clean(self):
        data = super().clean()
        if data.get("assignment") == LeadForm.Assignment.ROUND_ROBIN and not data.get(
            "round_robin_users"
        ):
            self.add_error("round_robin_users", "Choose at least one user to take turns.")
        return data


class TerritoryOwnerForm(forms.Form):
    territory = forms.CharField(max_length=100, required=False)
    owner = forms.ModelChoiceField(queryset=User.objects.none(), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = _active_users()

    def clean(self):
        data = super().clean()
        if data.get("territory", "").strip() and not data.get("owner"):
            self.add_error("owner", "Choose who gets this territory's contacts.")
        if data.get("owner") and not data.get("territory", "").strip():
            self.add_error("territory", "Name the territory.")
        return data


class _TerritoryOwnerBaseFormSet(forms.BaseFormSet):
    def clean(self):
        seen = set()
        for form in self.forms:
            territory = form.cleaned_data.get("territory", "").strip().lower()
            if territory and territory in seen:
                raise forms.ValidationError(f"“{territory}” is mapped twice.")
            seen.add(territory)

    def pairs(self) -> list[tuple[str, User]]:
        return [
            (form.cleaned_data["territory"].strip(), form.cleaned_data["owner"])
            for form in self.forms
            if form.cleaned_data.get("territory", "").strip()
        ]


TerritoryOwnerFormSet = forms.formset_factory(
    TerritoryOwnerForm, formset=_TerritoryOwnerBaseFormSet, extra=3, max_num=50, absolute_max=50
)


def territory_rule_check(form: LeadFormForm, territories: TerritoryOwnerFormSet) -> bool:
    """The by-territory rule needs at least one territory mapped to a user."""
    if form.cleaned_data.get("assignment") == LeadForm.Assignment.TERRITORY and not (
        territories.pairs()
    ):
        form.add_error("assignment", "Map at least one territory to a user below.")
        return False
    return True


class SubmissionForm(forms.Form):
    """What a visitor fills: the e-mail address, the contact fields the lead form asks for (in
    the order they are listed in ContactField), and its interest checkboxes."""

    def __init__(self, *args, lead_form: LeadForm, **kwargs):
        super().__init__(*args, **kwargs)
        self.lead_form = lead_form
        self.fields["email"] = forms.EmailField(
            label="E-mail",
            max_length=EMAIL_MAX_LENGTH,
            widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        )
        territories = sorted(
            (owner.territory for owner in lead_form.territory_owners.all()), key=str.lower
        )
        for name in ContactField.values:
            if name not in lead_form.contact_fields:
                continue
            model, column, kind, autocomplete = INPUTS[name]
            required = name in lead_form.required_fields
            label = ContactField(name).label
            if name == ContactField.TERRITORY and (
                lead_form.assignment == LeadForm.Assignment.TERRITORY and territories
            ):
                # Territories matched exactly to their owners: the visitor picks one.
                self.fields[name] = forms.ChoiceField(
                    label=label,
                    required=required,
                    choices=[("", "—"), *((t, t) for t in territories)],
                )
                continue
            widget = forms.TextInput(attrs={"autocomplete": autocomplete})
            widget.input_type = kind
            self.fields[name] = forms.CharField(
                label=label,
                required=required,
                max_length=model._meta.get_field(column).max_length,
                widget=widget,
            )
        if lead_form.interests:
            self.fields["interests"] = forms.MultipleChoiceField(
                label=INTERESTS_LABEL,
                required=False,
                choices=[(interest, interest) for interest in lead_form.interests],
                widget=forms.CheckboxSelectMultiple,
            )

    def submitted_data(self) -> dict:
        """The cleaned values worth keeping (blank ones left out)."""
        return {
            name: value for name, value in self.cleaned_data.items() if value not in ("", [], None)
        }

    def definition(self) -> dict:
        """The fields as the embed script draws them."""
        fields = []
        for name, field in self.fields.items():
            spec = {"name": name, "label": str(field.label), "required": field.required}
            if isinstance(field, forms.MultipleChoiceField):
                spec.update(type="checkboxes", choices=[value for value, _ in field.choices])
            elif isinstance(field, forms.ChoiceField):
                spec.update(type="select", choices=[value for value, _ in field.choices if value])
            else:
                spec.update(
                    type=field.widget.input_type,
                    max_length=field.max_length,
                    autocomplete=field.widget.attrs.get("autocomplete", ""),
                )
            fields.append(spec)
        return {"fields": fields, "honeypot": HONEYPOT}


def json_payload_errors(payload, form_fields) -> dict[str, list[str]] | None:
    """Why a JSON submission is malformed (not an object of strings, unknown keys), by key;
    None when its shape is right. Values are validated by SubmissionForm afterwards."""
    if not isinstance(payload, dict):
        return {"__all__": ["Send a JSON object of field names and values."]}
    errors = {}
    for key, value in payload.items():
        if key != HONEYPOT and key not in form_fields:
            errors[key] = ["This form has no such field."]
        elif key == "interests":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors[key] = ["Send the ticked interests as a list of strings."]
        elif not isinstance(value, str):
            errors[key] = ["Send a string."]
    return errors or None
