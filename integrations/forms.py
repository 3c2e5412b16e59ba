from django import forms

from crm.users.models import User


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.full_name} <{obj.email}> · {obj.get_role_display()}"


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="Who or what uses the key, e.g. “Partner portal sync”."
    )
    user = UserChoiceField(
        label="Acts as",
        queryset=User.objects.filter(is_active=True).order_by("full_name"),
        help_text="The key sees and may do exactly what this user may.",
    )
    read_only = forms.BooleanField(
        label="Read-only (may not create, change or delete anything)", required=False
    )
