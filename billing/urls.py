from django.urls import path, re_path

from billing import views

urlpatterns = [
    path("billing/", views.periods, name="billing-periods"),
    re_path(r"^billing/(?P<period>[0-9]{4}-[0-9]{2})/export\.xlsx$", views.export, name="billing-export"),
]
