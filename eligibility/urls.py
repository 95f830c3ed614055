"""The registry pages, under /registry/ (config/urls.py includes them there)."""

from django.urls import path

from eligibility import contact_views, views

urlpatterns = [
    path("", views.registry_list, name="registry-list"),
    path("export/", views.registry_export, name="registry-export"),
    path("new/", views.senior_create, name="registry-add"),
    path("<int:senior_id>/", views.senior_detail, name="registry-senior"),
    path("<int:senior_id>/edit/", views.senior_edit, name="registry-edit"),
    path("<int:senior_id>/status/", views.senior_status, name="registry-status"),
    path("<int:senior_id>/tier-override/", views.override_set, name="registry-override-set"),
    path("<int:senior_id>/tier-override/end/", views.override_end, name="registry-override-end"),
    path("contacts/", contact_views.contact_list, name="registry-contacts"),
    path("contacts/<int:community_id>/", contact_views.contact_edit, name="registry-contact-edit"),
    path("import/", views.import_upload, name="registry-import"),
    path("import/template/", views.import_template, name="registry-import-template"),
    path("import/<int:job_id>/", views.import_job, name="registry-import-job"),
    path("import/<int:job_id>/annotated/", views.import_annotated, name="registry-import-annotated"),
    path("import/<int:job_id>/confirm/", views.import_confirm, name="registry-import-confirm"),
]
