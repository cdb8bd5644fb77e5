from django.contrib import admin
from django.urls import path

from observability import views

# Mounted under admin/ (before the admin's own URLs), linked from the admin index. The admin
# site's wrapper sends anyone not logged in as staff to its login page (and marks the pages
# never cached); the view then requires observability.view_dashboards.
dashboard = admin.site.admin_view(views.dashboard)

urlpatterns = [
    path("", dashboard, {"page": "overview"}, name="dashboards-overview"),
    path("cost/", dashboard, {"page": "cost"}, name="dashboards-cost"),
    path("models/", dashboard, {"page": "models"}, name="dashboards-models"),
    path("keys/", dashboard, {"page": "keys"}, name="dashboards-keys"),
]
