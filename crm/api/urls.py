"""/api/v1/ (the resources), /api/schema/ (OpenAPI 3) and /api/docs/ (served by the app)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.routers import DefaultRouter

from campaigns.api import CampaignMemberViewSet, CampaignViewSet, SegmentViewSet
from contacts.api import (
    AccountViewSet,
    ActivityViewSet,
    AppointmentViewSet,
    ContactViewSet,
    TaskViewSet,
)
from crm.users.api import UserViewSet
from opportunities.api import OpportunityViewSet, PipelineViewSet
from tracking.api import TimelineViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("accounts", AccountViewSet, basename="account")
router.register("contacts", ContactViewSet, basename="contact")
router.register("opportunities", OpportunityViewSet, basename="opportunity")
router.register("activities", ActivityViewSet, basename="activity")
router.register("tasks", TaskViewSet, basename="task")
router.register("appointments", AppointmentViewSet, basename="appointment")
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("users", UserViewSet, basename="user")
router.register("timeline", TimelineViewSet, basename="timeline-entry")
router.register("campaigns", CampaignViewSet, basename="campaign")
router.register("campaign-members", CampaignMemberViewSet, basename="campaign-member")
router.register("segments", SegmentViewSet, basename="segment")

# The schema and its docs describe the API, not a tenant's data: open to anyone who can read
# them, so a partner's developer can start before having a key.
OPEN = {"authentication_classes": [], "permission_classes": [AllowAny], "throttle_classes": []}

urlpatterns = [
    path("api/v1/", include((router.urls, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(**OPEN), name="api-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema", **OPEN),
        name="api-docs",
    ),
]
