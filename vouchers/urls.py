from django.urls import path

from vouchers import card_views, scan_views, views

urlpatterns = [
    # The staff's phone scanner: it signs the phone in itself (a device token), no page sign-in.
    path("scan/", scan_views.scanner, name="scan"),
    # Its service worker (scope /scan/): the page opens without network from what it kept.
    path("scan/sw.js", scan_views.service_worker, name="scan-service-worker"),
    # The QR code on the paper voucher encodes this URL; it needs no sign-in.
    path("v/<str:token>/", views.senior_voucher, name="senior-voucher"),
    # Its "this service did not happen" button (POST: the service's number is in the body).
    path("v/<str:token>/dispute/", views.senior_dispute, name="senior-dispute"),
    # The worker's "new card" button (POST) on the senior's registry page.
    path("vouchers/<int:voucher_id>/reissue/", views.voucher_reissue, name="voucher-reissue"),
    # Printed cards (PDF, GET, ids and codes only): a community's month
    # (?period=YYYY-MM&community=CODE) and one voucher's current card.
    path("vouchers/cards.pdf", card_views.community_cards, name="voucher-cards"),
    path("vouchers/<int:voucher_id>/card.pdf", card_views.voucher_card, name="voucher-card"),
]
