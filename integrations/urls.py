from django.urls import path

from integrations import views, webhook_views

app_name = "integrations"

urlpatterns = [
    path("settings/api-keys/", views.api_key_list, name="api_key_list"),
    path("settings/api-keys/new/", views.api_key_create, name="api_key_create"),
    path("settings/api-keys/<int:pk>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("settings/webhooks/", webhook_views.endpoint_list, name="webhook_list"),
    path("settings/webhooks/new/", webhook_views.endpoint_create, name="webhook_create"),
    path("settings/webhooks/dead/", webhook_views.dead_letters, name="webhook_dead"),
    path("settings/webhooks/<int:pk>/", webhook_views.endpoint_detail, name="webhook_detail"),
    path("settings/webhooks/<int:pk>/edit/", webhook_views.endpoint_edit, name="webhook_edit"),
    path(
        "settings/webhooks/<int:pk>/delete/", webhook_views.endpoint_delete, name="webhook_delete"
    ),
    path(
        "settings/webhooks/deliveries/<int:pk>/",
        webhook_views.delivery_detail,
        name="webhook_delivery",
    ),
    path(
        "settings/webhooks/deliveries/<int:pk>/replay/",
        webhook_views.delivery_replay,
        name="webhook_replay",
    ),
]
