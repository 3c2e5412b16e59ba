from django.urls import path

from crm import views
from crm.tenants import views as tenant_views

urlpatterns = [
    path("", tenant_views.signup, name="signup"),
    path("healthz", views.healthz, name="healthz"),
]
