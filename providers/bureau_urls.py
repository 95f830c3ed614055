"""/providers/: the bureau creates and suspends providers and their contracts; a manager sees theirs."""

from django.urls import path

from providers import bureau_views as views

urlpatterns = [
    path("", views.provider_list, name="provider-list"),
    path("new/", views.provider_add, name="provider-add"),
    path("<int:provider_id>/", views.provider_detail, name="provider-detail"),
    path("<int:provider_id>/edit/", views.provider_edit, name="provider-edit"),
    path("<int:provider_id>/suspend/", views.provider_suspend, name="provider-suspend"),
    path("<int:provider_id>/reinstate/", views.provider_reinstate, name="provider-reinstate"),
    path("<int:provider_id>/contracts/new/", views.contract_add, name="contract-add"),
    path("contracts/<int:contract_id>/", views.contract_edit, name="contract-edit"),
    path("catalogue/", views.service_catalogue, name="service-catalogue"),
    path("catalogue/new/", views.service_item_add, name="service-item-add"),
    path("catalogue/<int:service_item_id>/", views.service_item_edit, name="service-item-edit"),
]
