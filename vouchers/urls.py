from django.urls import path

from vouchers import views

urlpatterns = [
    # The QR code on the paper voucher encodes this URL; it needs no sign-in.
    path("v/<str:token>/", views.senior_voucher, name="senior-voucher"),
    # The worker's "new card" button (POST) on the senior's registry page.
    path("vouchers/<int:voucher_id>/reissue/", views.voucher_reissue, name="voucher-reissue"),
]
