from django.urls import path

from vouchers import views

urlpatterns = [
    # The QR code on the paper voucher encodes this URL; it needs no sign-in.
    path("v/<str:token>/", views.senior_voucher, name="senior-voucher"),
]
