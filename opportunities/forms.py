"""Forms validate input; the services in opportunities.services do the writing."""

from decimal import Decimal

from django import forms

from contacts.forms import account_picker
from crm import access
from crm.users.models import User
from opportunities.models import Opportunity, Product, Stage


class StageChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.pipeline.name}: {obj.name} ({obj.probability}%)"


class OpportunityForm(forms.ModelForm):
    stage = StageChoiceField(queryset=Stage.objects.none())

    class Meta:
        model = Opportunity
        fields = [
            "name",
            "account",
            "primary_contact",
            "stage",
            "owner",
            "amount",
            "currency",
            "expected_close",
            "forecast_category",
            "next_step",
        ]
        widgets = {"expected_close": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"] = account_picker(user)
        self.fields["owner"].queryset = User.objects.filter(is_active=True)
        self.fields["stage"].queryset = Stage.objects.select_related("pipeline").order_by(
            "pipeline__name", "position"
        )
        # The primary contact is one of the account's people: offering every contact of a large
        # tenant would make the page huge.
        account = self.data.get("account") or self.initial.get("account")
        account_id = self.fields["account"].pk_of(account) or self.instance.account_id
        contacts = access.contacts_for(user).order_by("last_name", "first_name", "id")
        self.fields["primary_contact"].queryset = (
            contacts.filter(account_id=account_id) if account_id else contacts.none()
        )
        self.fields["primary_contact"].help_text = "One of the account's contacts."
        if self.instance.pk and self.instance.line_items.exists():
            self.fields["amount"].disabled = True
            self.fields["amount"].help_text = "The sum of the line items."
        if self.instance.pk:
            # Closing a deal asks for the reason: it is done with the won/lost buttons.
            self.fields["stage"].queryset = self.fields["stage"].queryset.filter(
                pipeline_id=self.instance.stage.pipeline_id
            )

    def clean(self):
        data = super().clean()
        contact, account = data.get("primary_contact"), data.get("account")
        if contact and account and contact.account_id != account.pk:
            self.add_error("primary_contact", "This person is not at the chosen account.")
        return data


class CloseForm(forms.Form):
    outcome = forms.ChoiceField(choices=[("won", "Won"), ("lost", "Lost")])
    reason = forms.CharField(max_length=200, help_text="Why it was won or lost.")


class LineItemForm(forms.Form):
    product = forms.ModelChoiceField(queryset=Product.objects.filter(is_active=True))
    quantity = forms.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0.01"))
    unit_price = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=0,
        required=False,
        help_text="Leave empty for the list price.",
    )
    discount_percent = forms.DecimalField(
        max_digits=5, decimal_places=2, min_value=0, max_value=100, initial=0, label="Discount %"
    )


class ProductForm(forms.ModelForm):
    unit_price = forms.DecimalField(max_digits=14, decimal_places=2, min_value=0)

    class Meta:
        model = Product
        fields = ["name", "sku", "product_type", "unit_price", "currency", "is_active"]


class PipelineForm(forms.Form):
    name = forms.CharField(max_length=100)


class StageForm(forms.Form):
    id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    name = forms.CharField(max_length=100)
    probability = forms.IntegerField(min_value=0, max_value=100, label="Probability %")
    is_won = forms.BooleanField(required=False, label="Won")
    is_lost = forms.BooleanField(required=False, label="Lost")


StageFormSet = forms.formset_factory(
    StageForm, extra=2, can_order=True, can_delete=True, max_num=30, validate_max=True
)
