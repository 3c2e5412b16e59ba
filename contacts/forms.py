"""Forms validate input; the services in contacts.services do the writing."""

from django import forms

from contacts.models import Account, Activity, Appointment, Contact, Task
from crm import access
from crm.forms import ShortChoices
from crm.pickers import RecordPickerField
from crm.users.models import User


def account_picker(user, **kwargs) -> RecordPickerField:
    """A field choosing one of the accounts the user may see, by typing its name."""
    return RecordPickerField(
        access.accounts_for(user), url_name="contacts:account_options", noun="account", **kwargs
    )


class ContactForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = [
            "first_name",
            "last_name",
            "email",
            "phone",
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
    class Meta:
        model = Appointment
        fields = ["title", "starts_at", "ends_at", "location", "remind_minutes_before"]
        widgets = {
            "starts_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
            "ends_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
        }
        labels = {"remind_minutes_before": "Remind me (minutes before)"}


class EmailForm(forms.Form):
    subject = forms.CharField(max_length=200)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), max_length=20_000)
