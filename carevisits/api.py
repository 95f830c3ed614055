"""The care-visit API (/api/v1/care-visits/) for other systems: record a visit or a refusal, list
the visits a user may see, and "my visits" for the month.

Thin: parse, call `services` or `selectors`, render. Refusals are `CareVisitError`s that
`config.api.exception_handler` turns into `{"code", "detail"}`; a senior outside the caller's
scope is `not_found`, exactly as on the pages.
"""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from carevisits import selectors, services
from carevisits.errors import CareVisitError
from carevisits.models import CHECKLIST, Referral, VisitMode, VisitRecord
from config.api import mark_recorded
from config.months import parse_month
from providers.api import ErrorSerializer

ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409)}
LIST_LIMIT = 200


class CareVisitRequestSerializer(serializers.Serializer):
    senior = serializers.IntegerField(min_value=1, help_text="The senior's id in the registry")
    outcome = serializers.ChoiceField(
        choices=VisitRecord.Outcome.choices, default=VisitRecord.Outcome.VISITED
    )
    mode = serializers.ChoiceField(choices=VisitMode.choices)
    visited_at = serializers.DateTimeField(required=False, help_text="ISO 8601 with a time zone; default now")
    living_problem = serializers.BooleanField(default=False)
    health_problem = serializers.BooleanField(default=False)
    safety_hazard = serializers.BooleanField(default=False)
    needs_help = serializers.BooleanField(default=False)
    notes = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    urgent = serializers.BooleanField(default=False)
    referral = serializers.ChoiceField(choices=Referral.choices, required=False, allow_blank=True, default="")
    action_taken = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    follow_up_on = serializers.DateField(required=False, allow_null=True, default=None)


class CareVisitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    senior = serializers.IntegerField(source="senior_id")
    outcome = serializers.CharField()
    mode = serializers.CharField()
    visited_at = serializers.DateTimeField()
    visited_on = serializers.DateField()
    living_problem = serializers.BooleanField()
    health_problem = serializers.BooleanField()
    safety_hazard = serializers.BooleanField()
    needs_help = serializers.BooleanField()
    notes = serializers.CharField()
    urgent = serializers.BooleanField()
    urgent_closed = serializers.SerializerMethodField()
    referral = serializers.CharField()
    action_taken = serializers.CharField()
    follow_up_on = serializers.DateField(allow_null=True)
    recorded_by = serializers.CharField(source="recorded_by.username")
    recorded_at = serializers.DateTimeField()

    def get_urgent_closed(self, record) -> bool:
        return record.urgent_closed_at is not None


class DueSerializer(serializers.Serializer):
    senior = serializers.IntegerField(source="senior.pk")
    name = serializers.CharField(source="senior.name")
    community = serializers.CharField(source="senior.community.code")
    care_class = serializers.CharField()
    state = serializers.CharField(help_text="overdue, due, home_due, done or declined")
    visits_due = serializers.IntegerField(source="required")
    visits_done = serializers.IntegerField(source="counted")
    home_overdue = serializers.BooleanField()
    last_visit = serializers.DateField(allow_null=True)
    last_home_visit = serializers.DateField(source="last_home", allow_null=True)


class CareVisitListQuerySerializer(serializers.Serializer):
    senior = serializers.IntegerField(min_value=1, required=False, help_text="Only this senior's visits")
    month = serializers.RegexField(
        r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])$", required=False, help_text="YYYY-MM: only visits of this month"
    )


class CareVisitsView(APIView):
    @extend_schema(
        parameters=[CareVisitListQuerySerializer],
        responses={200: CareVisitSerializer(many=True), **ERRORS},
        summary="Care visits the caller may see, newest first (at most 200)",
    )
    def get(self, request):
        # A plain dict: a QueryDict would let "?month=" pass as "not given".
        query = CareVisitListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        records = selectors.visits_visible_to(request.user).select_related("recorded_by")
        if "senior" in query.validated_data:
            records = records.filter(senior_id=query.validated_data["senior"])
        if "month" in query.validated_data:
            month = parse_month(query.validated_data["month"])
            records = records.filter(visited_on__year=month.year, visited_on__month=month.month)
        records = records.order_by("-visited_at", "-id")[:LIST_LIMIT]
        return Response(CareVisitSerializer(records, many=True).data)

    @extend_schema(
        request=CareVisitRequestSerializer,
        responses={201: CareVisitSerializer, **ERRORS},
        summary="Record a care visit, or a refusal of visits (outcome=declined, with notes)",
    )
    def post(self, request):
        data = CareVisitRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        senior = values.pop("senior")
        record = services.record_visit(
            senior=senior,
            by=request.user,
            source="api",
            **{name: values.pop(name) for name in CHECKLIST},
            **values,
        )
        mark_recorded(request)
        return Response(CareVisitSerializer(record).data, status=status.HTTP_201_CREATED)


class MyVisitsView(APIView):
    @extend_schema(
        responses={200: DueSerializer(many=True), **ERRORS},
        summary="This month's seniors paired with the caller, most overdue first",
    )
    def get(self, request):
        if not request.user.has_perm("carevisits.view_visitrecord"):
            raise CareVisitError(
                "not_permitted", _("Care visits are for community workers, officers and the bureau.")
            )
        month = timezone.localdate().replace(day=1)
        due = selectors.due_seniors(user=request.user, month=month, mine=True, per_page=LIST_LIMIT)
        return Response(DueSerializer(due.rows, many=True).data)
