"""/providers/<id>/staff|devices|redemptions/: a provider manager runs their own team."""

from django.urls import path

from providers import manager_views as views

urlpatterns = [
    # The home page's links: each takes a manager to their own provider's page.
    path("staff/", views.my_team, {"page": "team-staff"}, name="team-my-staff"),
    path("devices/", views.my_team, {"page": "team-devices"}, name="team-my-devices"),
    path("redemptions/", views.my_team, {"page": "team-redemptions"}, name="team-my-redemptions"),
    path("<int:provider_id>/staff/", views.staff_list, name="team-staff"),
    path("<int:provider_id>/staff/new/", views.staff_add, name="team-staff-add"),
    path(
        "<int:provider_id>/staff/<int:staff_id>/deactivate/",
        views.staff_active,
        {"active": False},
        name="team-staff-deactivate",
    ),
    path(
        "<int:provider_id>/staff/<int:staff_id>/reactivate/",
        views.staff_active,
        {"active": True},
        name="team-staff-reactivate",
    ),
    path("<int:provider_id>/devices/", views.device_list, name="team-devices"),
    path("<int:provider_id>/devices/<int:device_id>/revoke/", views.device_revoke, name="team-device-revoke"),
    path("<int:provider_id>/redemptions/", views.redemption_list, name="team-redemptions"),
]
