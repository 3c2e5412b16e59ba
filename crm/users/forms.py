from django import forms

from crm.users.models import Role, Team, User


class InviteForm(forms.Form):
    full_name = forms.CharField(max_length=150)
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.SALES)
    team = forms.ModelChoiceField(queryset=Team.objects.all(), required=False)

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("A user with this e-mail already exists.")
        return email


class UserEditForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
    team = forms.ModelChoiceField(queryset=Team.objects.all(), required=False)
