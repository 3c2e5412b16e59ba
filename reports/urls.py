from django.urls import path

from reports import (
    activity_views,
    cost_views,
    forecast_views,
    lifecycle_views,
    marketing_views,
    quota_views,
    views,
)

app_name = "reports"

urlpatterns = [
    path("", views.report_index, name="index"),
    path("activity/", activity_views.activity_report, name="activity"),
    path("life-cycle/", lifecycle_views.lifecycle_report, name="lifecycle"),
    path("forecast/", forecast_views.forecast_report, name="forecast"),
    path(
        "forecast/opportunities/",
        forecast_views.forecast_opportunities,
        name="forecast_opportunities",
    ),
    path("pipeline-movement/", forecast_views.pipeline_movement, name="pipeline_movement"),
    path("quotas/", quota_views.quota_list, name="quotas"),
    path("marketing/", marketing_views.marketing_report, name="marketing"),
    path("marketing/refresh/", marketing_views.marketing_refresh, name="marketing_refresh"),
    path("customer-size/", marketing_views.customer_size_report, name="customer_size"),
    path("acquisition-cost/", cost_views.acquisition_cost_report, name="acquisition_cost"),
    path("costs/", cost_views.cost_campaigns, name="cost_campaigns"),
    path("costs/<int:pk>/", cost_views.cost_entries_edit, name="cost_entries"),
]
