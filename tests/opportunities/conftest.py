import pytest

from crm.demo import pipeline_ensure
from crm.users.models import User


@pytest.fixture
def admin(in_alpha):
    return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def stages(in_alpha):
    """The default pipeline's stages by name."""
    return {s.name: s for s in pipeline_ensure().stages.all()}
