"""What the forecast's and pipeline movement's tests share."""

import pytest

from reports.filters import period_of, today


@pytest.fixture
def period():
    """Last quarter: whole, and in the list of periods a user can choose."""
    return period_of("quarter", today()).previous()


@pytest.fixture(params=["live", "counted"])
def source(request):
    """Whether the page shows live figures (the deal rollups never counted) or the rollups',
    counted after the deals were made."""
    return request.param
