"""/providers/: the bureau creates and suspends providers and their contracts; a manager sees theirs."""

urlpatterns = []
