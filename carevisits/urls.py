"""The care-visit pages, under /visits/ (config/urls.py includes them there)."""

from django.urls import path

from carevisits import views

urlpatterns = [
    path("", views.picture, name="carevisits-picture"),
    path("mine/", views.my_visits, name="carevisits-mine"),
    path("due/", views.due_list, name="carevisits-due"),
    path("requirements/", views.requirements, name="carevisits-requirements"),
    path("seniors/<int:senior_id>/", views.senior_page, name="carevisits-senior"),
    path("seniors/<int:senior_id>/record/", views.record_visit, name="carevisits-record"),
    path("seniors/<int:senior_id>/pair/", views.pair, name="carevisits-pair"),
    path(
        "seniors/<int:senior_id>/registration.xlsx", views.export_registration, name="carevisits-registration"
    ),
    path(
        "seniors/<int:senior_id>/records.xlsx", views.export_senior_records, name="carevisits-senior-records"
    ),
    path("records/<int:record_id>/close-urgent/", views.close_urgent, name="carevisits-close-urgent"),
    path("export/statistics.xlsx", views.export_statistics, name="carevisits-statistics"),
    path("export/records.xlsx", views.export_month_records, name="carevisits-month-records"),
    path(
        "export/registration.xlsx",
        views.export_community_registration,
        name="carevisits-community-registration",
    ),
]
