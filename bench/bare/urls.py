from django.urls import path

from bench.bare import views

urlpatterns = [
    path("v1/chat/completions", views.forward),
    path("ready", views.ready),
]
