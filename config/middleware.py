"""Pages that say "not found" the same way in every mode."""

from django.http import Http404


class FriendlyNotFoundMiddleware:
    """A page that refuses with 404 (a senior outside one's scope, an unknown record) shows the
    friendly "not found" page even with DEBUG on, as `make run` is: that is what people try the
    product with. Unknown URLs keep Django's own handling (its debug page lists the routes)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Http404):
            from config.views import not_found

            return not_found(request, exception)
        return None
