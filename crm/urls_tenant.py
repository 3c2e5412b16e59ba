from django.urls import include, path, re_path

from campaigns.engagement_views import email_click, email_open
from campaigns.esp import webhook_urlpatterns
from campaigns.unsubscribe import unsubscribe_page
from crm import mailcatcher_views, views
from tracking import personalization_views

urlpatterns = [
    path("", views.home, name="home"),
    path("", include("crm.users.urls")),
    path("", include("contacts.urls")),
    path("opportunities/", include("opportunities.urls")),
    path("campaigns/", include("campaigns.urls")),
    # Lead-capture forms: the builder under /forms/, the public pages under /f/.
    path("", include("leads.urls")),
    path("reports/", include("reports.urls")),
    path(
        "marketing/personalization/",
        include((personalization_views.urlpatterns, "personalization")),
    ),
    # Website tracking set-up (the snippet's ingest endpoint, /t/collect, is answered before
    # Django: see tracking.ingest).
    path("tracking/", include("tracking.urls")),
    # The engagement score: the ready-to-talk list, the scoring settings, the 360 page's panel.
    path("", include("tracking.score_urls")),
    # Public: the tenant's pages ask which blocks to show a visitor (tracking.personalization).
    path("t/personalize", personalization_views.personalize, name="personalize"),
    # Public: the link in every marketing e-mail; its signed token is the only authority.
    path("u/<str:token>/", unsubscribe_page, name="unsubscribe"),
    # Public: the open pixel and click redirect of campaign e-mail (campaigns.engagement). The
    # click takes any path (even with line breaks), so whatever is put there gets the error page.
    path("o/<str:token>.gif", email_open, name="email_open"),
    re_path(r"^c/(?P<token>[\s\S]+)/\Z", email_click, name="email_click"),
    # Public, behind basic auth: the ESP's delivery, bounce and complaint events (campaigns.esp),
    # e.g. /anymail/postmark/tracking/.
    path("anymail/", include((webhook_urlpatterns, "anymail"))),
    # `make run`'s caught mail, read in the browser (404 unless the catcher is in use).
    path("mail/", mailcatcher_views.caught_mail_list, name="caught_mail_list"),
    path("mail/<str:key>/", mailcatcher_views.caught_mail_detail, name="caught_mail_detail"),
    path("", include("integrations.urls")),
    path("", include("crm.api.urls")),
]
