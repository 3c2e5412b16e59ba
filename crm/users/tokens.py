"""The one-time link that carries a new workspace's founder from the public sign-up page to
their logged-in workspace (session cookies cannot cross from one host to another)."""

from django.contrib.auth.tokens import PasswordResetTokenGenerator


class WelcomeTokenGenerator(PasswordResetTokenGenerator):
    # The hash covers last_login, so the link stops working once it has logged the user in.
    key_salt = "crm.users.tokens.WelcomeTokenGenerator"

    def check_token(self, user, token):
        # Two minutes is plenty for a redirect; PASSWORD_RESET_TIMEOUT is days.
        return super().check_token(user, token) and self._age(token) <= 120

    def _age(self, token) -> int:
        from django.utils.http import base36_to_int

        ts_b36 = token.split("-")[0]
        return self._num_seconds(self._now()) - base36_to_int(ts_b36)


welcome_token_generator = WelcomeTokenGenerator()
