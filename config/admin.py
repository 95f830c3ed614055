"""What the apps' admin modules share."""

from django.contrib import admin
from django.contrib.admin.views.main import SEARCH_VAR
from django.http import QueryDict
from django.shortcuts import redirect


class PostedSearchMixin:
    """The changelist's search is POSTed and kept in the session (per model), never in a URL: a
    superuser who types an ID-card number or a phone into it (the search fields are names, but
    anything can be typed) does not put it in the access log, nor in the page's links (sorting,
    filters, pages), which leave the search out. A `q` typed into the address bar is taken once
    and dropped from the address. An empty search clears it."""

    def _search_key(self) -> str:
        return f"admin-search:{self.model._meta.label_lower}"

    def changelist_view(self, request, extra_context=None):
        key = self._search_key()
        if request.method == "POST" and "_search" in request.POST:
            request.session[key] = request.POST.get(SEARCH_VAR, "").strip()[:200]
            return redirect(request.get_full_path())
        if SEARCH_VAR in request.GET:
            request.session[key] = request.GET[SEARCH_VAR].strip()[:200]
            params = request.GET.copy()
            del params[SEARCH_VAR]
            return redirect(f"{request.path}?{params.urlencode()}" if params else request.path)
        term = request.session.get(key, "") if hasattr(request, "session") else ""
        if term:
            request.GET = request.GET.copy()
            request.GET[SEARCH_VAR] = term
        return super().changelist_view(request, extra_context)

    def get_changelist(self, request, **kwargs):
        base = super().get_changelist(request, **kwargs)

        def get_query_string(changelist, new_params=None, remove=None):
            params = QueryDict(
                base.get_query_string(changelist, new_params, remove).lstrip("?"), mutable=True
            )
            params.pop(SEARCH_VAR, None)
            return f"?{params.urlencode()}"

        return type("PostedSearchChangeList", (base,), {"get_query_string": get_query_string})


class ModelAdmin(PostedSearchMixin, admin.ModelAdmin):
    """The project's admin base: its search is POSTed (PostedSearchMixin)."""


class ReadOnlyAdmin(ModelAdmin):
    """Viewable by whoever has the view permission; never added, changed or deleted here.

    For facts written only by services (the ledger, determinations, settlements, devices).
    """

    show_full_result_count = False  # these tables hold millions of rows

    def get_readonly_fields(self, request, obj=None):
        return self.fields or [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
