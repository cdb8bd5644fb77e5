from django.urls import path

from observability import views

# Mounted under admin/ (before the admin's own URLs): staff only, linked from the admin index.
urlpatterns = [
    path("", views.dashboard, {"page": "overview"}, name="dashboards-overview"),
    path("cost/", views.dashboard, {"page": "cost"}, name="dashboards-cost"),
    path("models/", views.dashboard, {"page": "models"}, name="dashboards-models"),
    path("keys/", views.dashboard, {"page": "keys"}, name="dashboards-keys"),
]
