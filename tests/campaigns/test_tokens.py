"""Signed tokens made in bulk (campaigns.tokens) are the tokens django.core.signing makes: the
unsubscribe page, the pixel and the click redirect read them as they read Django's."""

import time

import pytest
from django.core import signing

from campaigns.tokens import TokenSigner

DATA = {"t": "alpha", "c": 7, "e": "zoë@example.test", "p": 3}


def test_a_token_is_the_one_signing_dumps_makes_in_the_same_second(settings):
    settings.SECRET_KEY = "a-secret-of-the-test"
    signer = TokenSigner("campaigns.test")

    while True:
        second = int(time.time())
        ours, djangos = signer.json(DATA), signing.dumps(DATA, salt="campaigns.test")
        if int(time.time()) == second:
            break

    assert ours == djangos
    assert signing.loads(ours, salt="campaigns.test") == DATA


def test_a_token_does_not_read_under_another_salt_or_key(settings):
    token = TokenSigner("campaigns.test").json(DATA)

    with pytest.raises(signing.BadSignature):
        signing.loads(token, salt="campaigns.other")
    settings.SECRET_KEY = "another-secret"
    with pytest.raises(signing.BadSignature):
        signing.loads(token, salt="campaigns.test")
