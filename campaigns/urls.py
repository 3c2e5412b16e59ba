from django.urls import path

from campaigns import segment_views, send_views, template_views, views

app_name = "campaigns"

email_template_urls = [
    path("templates/", template_views.template_list, name="template_list"),
    path("templates/new/", template_views.template_create, name="template_create"),
    path("templates/<int:pk>/edit/", template_views.template_edit, name="template_edit"),
    path("templates/<int:pk>/preview/", template_views.template_preview, name="template_preview"),
    path("templates/<int:pk>/test/", template_views.template_send_test, name="template_send_test"),
    path("blocks/", template_views.block_list, name="block_list"),
    path("blocks/new/", template_views.block_create, name="block_create"),
    path("blocks/<int:pk>/edit/", template_views.block_edit, name="block_edit"),
]

urlpatterns = [
    path("", views.campaign_list, name="list"),
    path("segments/", segment_views.segment_list, name="segment_list"),
    path("segments/new/", segment_views.segment_create, name="segment_create"),
    path("segments/preview/", segment_views.segment_preview, name="segment_preview"),
    path("segments/<int:pk>/", segment_views.segment_detail, name="segment_detail"),
    path("segments/<int:pk>/edit/", segment_views.segment_edit, name="segment_edit"),
    path("segments/<int:pk>/freeze/", segment_views.segment_freeze, name="segment_freeze"),
    path("segments/<int:pk>/delete/", segment_views.segment_delete, name="segment_delete"),
    path("new/", views.campaign_edit, name="create"),
    path("<int:pk>/", views.campaign_detail, name="detail"),
    path("<int:pk>/edit/", views.campaign_edit, name="edit"),
    path("<int:pk>/members/", views.campaign_add_segment, name="add_segment"),
    path("<int:pk>/send/", send_views.campaign_send_page, name="send"),
    path("<int:pk>/send/audience/", send_views.campaign_send_audience, name="send_audience"),
    path("<int:pk>/send/progress/", send_views.campaign_send_progress, name="send_progress"),
    path(
        "<int:pk>/send/<str:action>/",
        send_views.campaign_send_control,
        name="send_control",
    ),
    *email_template_urls,
]
