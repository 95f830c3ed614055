"""The bureau's policy pages, under /policies/ (config/urls.py includes them there)."""

from django.urls import path

from eligibility import policy_views as views

urlpatterns = [
    path("", views.policy_list, name="policy-list"),
    path("evaluate/", views.evaluation_start, name="policy-evaluate"),
    path("runs/<int:run_id>/", views.evaluation_run, name="policy-run"),
    path("runs/<int:run_id>/progress/", views.evaluation_run_progress, name="policy-run-progress"),
    path("<int:policy_id>/", views.policy_detail, name="policy-detail"),
    path("<int:policy_id>/copy/", views.policy_copy, name="policy-copy"),
    path("<int:policy_id>/delete/", views.policy_delete, name="policy-delete"),
    path("<int:policy_id>/simulate/", views.policy_simulate, name="policy-simulate"),
    path("<int:policy_id>/activate/", views.policy_activate, name="policy-activate"),
    path("<int:policy_id>/tiers/", views.tier_add, name="policy-tier-add"),
    path("<int:policy_id>/tiers/<int:tier_id>/", views.tier_save, name="policy-tier"),
    path("<int:policy_id>/tiers/<int:tier_id>/delete/", views.tier_delete, name="policy-tier-delete"),
    path("<int:policy_id>/rules/", views.rule_add, name="policy-rule-add"),
    path("<int:policy_id>/rules/<int:rule_id>/", views.rule_save, name="policy-rule"),
    path("<int:policy_id>/rules/<int:rule_id>/delete/", views.rule_delete, name="policy-rule-delete"),
]
