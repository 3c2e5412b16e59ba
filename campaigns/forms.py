"""Forms validate input; campaigns.services does the writing."""

from django import forms

from campaigns.models import Campaign, Segment
from crm.users.models import User


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = [
            "name",
            "kind",
            "status",
            "goal",
            "budget",
            "actual_cost",
            "starts_on",
            "ends_on",
            "owner",
        ]
        widgets = {
            "starts_on": forms.DateInput(attrs={"type": "date"}),
            "ends_on": forms.DateInput(attrs={"type": "date"}),
        }
        labels = {"kind": "Type", "actual_cost": "Actual cost"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = User.objects.filter(is_active=True)
        for name in ("budget", "actual_cost"):
            self.fields[name].min_value = 0
            self.fields[name].widget.attrs["min"] = 0

    def clean(self):
        data = super().clean()
        starts, ends = data.get("starts_on"), data.get("ends_on")
        if starts and ends and ends < starts:
            self.add_error("ends_on", "The end cannot be before the start.")
        for name in ("budget", "actual_cost"):
            if data.get(name) is not None and data[name] < 0:
                self.add_error(name, "Cannot be negative.")
        return data


class AddSegmentForm(forms.Form):
    segment = forms.ModelChoiceField(queryset=Segment.objects.order_by("name"))
