"""crm.links: a record's link from one reverse() a pattern, as reverse() would give it."""

import pytest
from django.urls import reverse, set_script_prefix, set_urlconf

from crm.links import record_url

NAMES = [
    "contacts:contact_detail",
    "contacts:account_detail",
    "contacts:contact_letter",
    "opportunities:detail",
    "opportunities:move_stage",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pk", [1, 42, 918273645, 10**12])
def test_a_record_url_is_what_reverse_gives(name, pk):
    set_urlconf("crm.urls_tenant")
    try:
        assert record_url(pk, name) == reverse(name, args=[pk])
        set_script_prefix("/crm/")
        assert record_url(pk, name) == reverse(name, args=[pk])
        assert record_url(pk, name).startswith("/crm/")
    finally:
        set_script_prefix("/")
        set_urlconf(None)
