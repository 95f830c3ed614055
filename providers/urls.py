from django.urls import path

from providers import views

urlpatterns = [
    path("", views.account_list, name="accounts-list"),
    path("new/", views.account_add, name="accounts-add"),
    path("<int:user_id>/", views.account_edit, name="accounts-edit"),
]
