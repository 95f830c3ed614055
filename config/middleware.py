"""Pages that say "not found" the same way in every mode, and the Content-Security-Policy."""

from functools import wraps

from django.http import Http404

# Nothing inline, nothing from elsewhere (DESIGN.md §6.9): scripts, styles, fonts and images are
# the app's own files. `data:`/`blob:` images are the QR codes and camera frames.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
# The scanner's QR decoder is WebAssembly: compiling it needs 'wasm-unsafe-eval' (never 'unsafe-eval').
CONTENT_SECURITY_POLICY_WASM = CONTENT_SECURITY_POLICY.replace(
    "script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'"
)


def csp_allow_wasm(view):
    """Lets the page of `view` compile WebAssembly (the scanner's decoder), nothing more."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY_WASM
        return response

    return wrapped


# Third-party pages whose templates carry inline styles (Django's admin, the API docs): styles
# only; their scripts are files.
CONTENT_SECURITY_POLICY_INLINE_STYLES = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)
INLINE_STYLE_PREFIXES = ("/admin/", "/api/docs/")


class ContentSecurityPolicyMiddleware:
    """The strict policy on every response that has not set its own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(INLINE_STYLE_PREFIXES):
            policy = CONTENT_SECURITY_POLICY_INLINE_STYLES
        else:
            policy = CONTENT_SECURITY_POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        return response


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
