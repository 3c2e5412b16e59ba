"""The scoring settings form: weights and decay, the threshold of acceptance and the ideal
customer, each with a field error for bad input."""

import re

from django import forms

from contacts.models import CustomerType
from tracking.models import default_weights

WEIGHT_LABELS = {
    "page_view": "Page view",
    "pricing_view": "Pricing page view",
    "product_view": "Product view",
    "purchase": "Purchase",
    "form": "Form filled",
    "email_open": "E-mail opened",
    "email_click": "E-mail link clicked",
    "meeting": "Meeting",
    "custom": "Custom website event",
}
SIZE = re.compile(r"\A(\d+-\d+|\d+\+|\d+)\Z")


def _weight_field(label: str) -> forms.FloatField:
    return forms.FloatField(label=label, min_value=0, max_value=1000)


def _split(text: str) -> list[str]:
    return sorted({part.strip() for part in text.replace("\n", ",").split(",") if part.strip()})


class ScoringSettingsForm(forms.Form):
    pricing_path = forms.CharField(
        label="Pricing page path",
        max_length=200,
        required=False,
        help_text="A page view whose path contains this counts as a pricing-page view "
        "(e.g. /pricing). Empty: none does.",
    )
    half_life_days = forms.FloatField(
        label="Half-life (days)",
        min_value=0.1,
        max_value=3650,
        help_text="Without new activity, a score halves in this many days.",
    )
    threshold = forms.FloatField(
        label="Sales-ready threshold",
        min_value=0.1,
        max_value=1_000_000,
        help_text="Reaching this score makes a contact sales-ready; the owner is told.",
    )
    rearm_below = forms.FloatField(
        label="Re-arm below (share of the threshold)",
        min_value=0.05,
        max_value=0.95,
        help_text="A contact can become sales-ready again only after the score fell below "
        "threshold times this (e.g. 0.6).",
    )
    cooldown_days = forms.FloatField(
        label="Cooldown (days)",
        min_value=0,
        max_value=365,
        help_text="And no sooner than this many days after the last time.",
    )
    ideal_industries = forms.CharField(
        label="Ideal customer: industries",
        required=False,
        max_length=1000,
        help_text="Comma-separated, e.g. Software, Retail.",
    )
    ideal_sizes = forms.CharField(
        label="Ideal customer: company sizes (employees)",
        required=False,
        max_length=200,
        help_text="Comma-separated bands: 11-50, 51-200, 1000+.",
    )
    ideal_territories = forms.CharField(
        label="Ideal customer: territories", required=False, max_length=1000
    )
    ideal_customer_types = forms.MultipleChoiceField(
        label="Ideal customer: customer types",
        required=False,
        choices=CustomerType.choices,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, label in WEIGHT_LABELS.items():
            self.fields[f"weight_{key}"] = _weight_field(f"Points: {label}")

    @classmethod
    def initial_from(cls, settings) -> dict:
        weights = {**default_weights(), **(settings.weights or {})}
        ideal = settings.ideal_customer or {}
        return {
            "pricing_path": settings.pricing_path,
            "half_life_days": settings.half_life_days,
            "threshold": settings.threshold,
            "rearm_below": settings.rearm_below,
            "cooldown_days": settings.cooldown_days,
            "ideal_industries": ", ".join(ideal.get("industry", [])),
            "ideal_sizes": ", ".join(ideal.get("size", [])),
            "ideal_territories": ", ".join(ideal.get("territory", [])),
            "ideal_customer_types": ideal.get("customer_type", []),
            **{f"weight_{key}": weights.get(key, 0) for key in WEIGHT_LABELS},
        }

    def weight_fields(self):
        return [self[f"weight_{key}"] for key in WEIGHT_LABELS]

    def other_fields(self):
        return [field for field in self if not field.name.startswith("weight_")]

    def clean_pricing_path(self):
        path = self.cleaned_data["pricing_path"].strip()
        if path and (not path.startswith("/") or any(c.isspace() for c in path)):
            raise forms.ValidationError("Enter a path that starts with / and has no spaces.")
        return path

    def clean_ideal_sizes(self):
        sizes = _split(self.cleaned_data["ideal_sizes"])
        bad = [size for size in sizes if not SIZE.match(size.replace(" ", ""))]
        if bad:
            raise forms.ValidationError(
                f"Not a size band: {', '.join(bad)}. Use forms like 11-50, 1000+ or 200."
            )
        for size in sizes:
            low, _, high = size.replace(" ", "").partition("-")
            if high and int(low) > int(high):
                raise forms.ValidationError(f"{size}: the first number is the smaller one.")
        return sizes

    def settings_fields(self) -> dict:
        """The cleaned values as TrackingSettings fields."""
        data = self.cleaned_data
        ideal = {
            "industry": _split(data["ideal_industries"]),
            "size": data["ideal_sizes"],
            "territory": _split(data["ideal_territories"]),
            "customer_type": sorted(data["ideal_customer_types"]),
        }
        return {
            "pricing_path": data["pricing_path"],
            "half_life_days": data["half_life_days"],
            "threshold": data["threshold"],
            "rearm_below": data["rearm_below"],
            "cooldown_days": data["cooldown_days"],
            "ideal_customer": {key: values for key, values in ideal.items() if values},
            "weights": {key: data[f"weight_{key}"] for key in WEIGHT_LABELS},
        }
