"""The care-visits panel of a senior's registry page: their class, contact person and last visit.

Registered with `eligibility.panels` from `CareVisitsConfig.ready()`; the registry page has already
decided that the user may see this senior (`eligibility.selectors.visible_to`).
"""


def senior_care_visits_panel(request, senior):
    """(template, context) for a classed senior; None for a user without the care-visit view
    permission, or a senior with no care-visit class."""
    from carevisits import selectors

    if not request.user.has_perm("carevisits.view_visitrecord"):
        return None
    summary = selectors.care_summary(senior=senior)
    if summary is None:
        return None
    return "carevisits/panel.html", {"care": summary}
