"""/providers/<id>/staff|devices|redemptions/: a provider manager runs their own team."""

urlpatterns = []
