"""Forms validate input; the services in contacts.services do the writing."""

from django import forms
from django.db.models import Q

from contacts.models import Account, Activity, Appointment, Contact, Task
from crm import access
from crm.forms import LinesField, ShortChoices
from crm.pickers import RecordPickerField, RecordsPickerField
from crm.users.models import User


def account_picker(user, **kwargs) -> RecordPickerField:
    """A field choosing one of the accounts the user may see, by typing its name."""
    return RecordPickerField(
        access.accounts_for(user), url_name="contacts:account_options", noun="account", **kwargs
    )


def _contact_named(text: str) -> Q:
    first, _, last = text.partition(" ")
    return Q(first_name__iexact=first, last_name__iexact=last.strip())


def contacts_picker(user, **kwargs) -> RecordsPickerField:
    """A field choosing a few of the contacts the user may see, by typing their names."""
    return RecordsPickerField(
        access.contacts_for(user),
        url_name="contacts:contact_options",
        noun="contact",
        named=_contact_named,
        **kwargs,
    )


class ContactForm(forms.ModelForm):
    other_emails = LinesField(
        forms.EmailField(max_length=254), required=False, label="Other e-mail addresses"
    )
    other_phones = LinesField(forms.CharField(max_length=50), required=False, label="Other phones")

    class Meta:
        model = Contact
        fields = [
            "first_name",
            "last_name",
            "email",
            "other_emails",
            "phone",
            "other_phones",
            "title",
            "account",
            "owner",
            "territory",
            "customer_type",
            "source",
            "lifecycle_stage",
            "interests",
            "do_not_email",
            "do_not_call",
            "do_not_mail",
            "external_id",
        ]
        help_texts = {"interests": "Separate with commas."}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"] = account_picker(user, required=False)
        self.fields["owner"].queryset = User.objects.filter(is_active=True)

    def clean_other_emails(self):
        # Lower case and each once, as merges keep them and the duplicate check looks them up.
        addresses = self.cleaned_data["other_emails"]
        return list(dict.fromkeys(address.lower() for address in addresses))


class AccountForm(forms.ModelForm):
    class Meta:
        model = Account
        fields = [
            "name",
            "domain",
            "industry",
            "employees",
            "territory",
            "customer_type",
            "parent",
            "owner",
            "phone",
            "street",
            "postal_code",
            "city",
            "country",
            "tags",
            "external_id",
        ]
        help_texts = {"tags": "Separate with commas."}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["parent"] = account_picker(user, required=False, label="Parent account")
        if self.instance.pk:
            parents = self.fields["parent"].queryset.exclude(pk=self.instance.pk)
            self.fields["parent"].queryset = parents
        self.fields["owner"].queryset = User.objects.filter(is_active=True)


class ActivityForm(forms.ModelForm):
    class Meta:
        model = Activity
        fields = ["kind", "subject", "outcome", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 2})}


class TaskForm(forms.ModelForm):
    class Meta:
        model = Task
        fields = ["title", "due_on", "priority", "assignee"]
        widgets = {"due_on": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].iterator = ShortChoices
        self.fields["assignee"].queryset = User.objects.filter(is_active=True)
        self.fields["assignee"].required = False


class AppointmentForm(forms.ModelForm):
    """An appointment booked by `user`, who attends it; other users of the tenant and other
    contacts (of those `user` may see) may be asked too."""

    class Meta:
        model = Appointment
        fields = [
            "title",
            "starts_at",
            "ends_at",
            "location",
            "users",
            "contacts",
            "remind_minutes_before",
        ]
        widgets = {
            "starts_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
            "ends_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
        }
        labels = {"remind_minutes_before": "Remind me (minutes before)"}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        colleagues = self.fields["users"]
        colleagues.iterator = ShortChoices
        colleagues.queryset = access.colleagues_for(user).exclude(pk=user.pk).order_by("full_name")
        colleagues.label = "Colleagues"
        colleagues.help_text = ""
        self.fields["contacts"] = contacts_picker(user, required=False, label="Other contacts")


class EmailForm(forms.Form):
    subject = forms.CharField(max_length=200)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), max_length=20_000)
