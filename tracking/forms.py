from django import forms


class SiteOriginsForm(forms.Form):
    """The tenant's websites, one origin a line (tracking.sites.site_origins_set checks them)."""

    site_origins = forms.CharField(
        label="Your websites",
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "https://www.example.com"}),
        help_text="One origin a line, such as https://www.example.com. Only these may send "
        "events to the CRM and show its personalized content.",
    )

    def origins(self) -> list[str]:
        return self.cleaned_data["site_origins"].splitlines()
