from django.urls import path, re_path

from billing import views

MONTH = r"(?P<period>[0-9]{4}-[0-9]{2})"

urlpatterns = [
    path("billing/", views.periods, name="billing-periods"),
    re_path(rf"^billing/{MONTH}/$", views.period, name="billing-period"),
    re_path(rf"^billing/{MONTH}/settle/$", views.settle, name="billing-settle"),
    re_path(rf"^billing/{MONTH}/export/$", views.export_start, name="billing-export-start"),
    path("billing/exports/<int:export_id>/", views.export, name="billing-export"),
    path("billing/exports/<int:export_id>/download/", views.export_download, name="billing-export-download"),
    path("billing/statements/<int:statement_id>/", views.statement, name="billing-statement"),
    path("billing/statements/<int:statement_id>/review/", views.review, name="billing-statement-review"),
    path("billing/statements/<int:statement_id>/approve/", views.approve, name="billing-statement-approve"),
    path("billing/statements/<int:statement_id>/pay/", views.pay, name="billing-statement-pay"),
    path(
        "billing/statements/<int:statement_id>/services/",
        views.statement_redemptions,
        name="billing-statement-redemptions",
    ),
]
