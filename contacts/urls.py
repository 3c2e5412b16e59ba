from django.urls import path

from contacts import import_views, letter_views, merge_views, views

app_name = "contacts"

urlpatterns = [
    path("accounts/", views.account_list, name="account_list"),
    path("accounts/new/", views.account_create, name="account_create"),
    path("accounts/options/", views.account_options, name="account_options"),
    path("accounts/export.csv", views.account_export, name="account_export"),
    path("accounts/<int:pk>/", views.account_detail, name="account_detail"),
    path("accounts/<int:pk>/edit/", views.account_edit, name="account_edit"),
    path("contacts/", views.contact_list, name="contact_list"),
    path("contacts/new/", views.contact_create, name="contact_create"),
    path("contacts/export.csv", views.contact_export, name="contact_export"),
    path("contacts/<int:pk>/", views.contact_detail, name="contact_detail"),
    path("contacts/<int:pk>/edit/", views.contact_edit, name="contact_edit"),
    path("contacts/<int:pk>/activities/", views.contact_log_activity, name="contact_log_activity"),
    path("contacts/<int:pk>/tasks/", views.contact_add_task, name="contact_add_task"),
    path("tasks/<int:pk>/done/", views.task_done, name="task_done"),
    path("search/", views.search, name="search"),
    path(
        "contacts/<int:pk>/appointments/",
        views.contact_book_appointment,
        name="contact_book_appointment",
    ),
    path("contacts/<int:pk>/email/", views.contact_send_email, name="contact_send_email"),
    path("calendar/", views.calendar, name="calendar"),
    path("letters/", letter_views.template_list, name="letter_template_list"),
    path("letters/new/", letter_views.template_create, name="letter_template_create"),
    path("letters/<int:pk>/edit/", letter_views.template_edit, name="letter_template_edit"),
    path("letters/batches/", letter_views.batch_list, name="letter_batch_list"),
    path("letters/batches/new/", letter_views.batch_new, name="letter_batch_new"),
    path("letters/batches/<int:pk>/", letter_views.batch_detail, name="letter_batch_detail"),
    path("letters/batches/<int:pk>.pdf", letter_views.batch_download, name="letter_batch_download"),
    path("contacts/<int:pk>/letters/", letter_views.contact_letter, name="contact_letter"),
    path(
        "contacts/<int:pk>/letters/<int:letter_pk>.pdf",
        letter_views.letter_download,
        name="letter_download",
    ),
    path("calendar/feed/<str:token>.ics", views.calendar_feed, name="calendar_feed"),
    path("imports/", import_views.import_list, name="import_list"),
    path("imports/new/", import_views.import_upload, name="import_upload"),
    path("imports/<int:pk>/", import_views.import_detail, name="import_detail"),
    path("imports/<int:pk>/map/", import_views.import_map, name="import_map"),
    path("imports/<int:pk>/errors.csv", import_views.import_errors, name="import_errors"),
    path("duplicates/<str:kind>/", merge_views.duplicates, name="duplicates"),
    path(
        "duplicates/<str:kind>/<int:kept>/<int:merged>/",
        merge_views.merge_review,
        name="merge_review",
    ),
    path("merges/", merge_views.journal, name="merge_journal"),
    path("merges/<int:pk>/undo/", merge_views.undo, name="merge_undo"),
]
