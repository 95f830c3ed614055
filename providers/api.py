"""API of the providers app: a scanning device signs in and gets its own token."""

import hashlib

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.throttling import ExactRateThrottle, ExactScopedRateThrottle
from providers.services import sign_in_device


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    device_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    staff = serializers.CharField()
    provider = serializers.CharField()
    provider_code = serializers.CharField()


class UsernameRateThrottle(ExactRateThrottle):
    """Limits sign-in attempts per username, whatever address they come from."""

    scope = "auth_username"

    def get_cache_key(self, request, view):
        username = (
            str(request.data.get("username", "")).strip().lower() if hasattr(request.data, "get") else ""
        )
        if not username:
            return None
        return self.cache_format % {
            "scope": self.scope,
            "ident": hashlib.sha256(username.encode()).hexdigest(),
        }


class AuthTokenView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [ExactScopedRateThrottle, UsernameRateThrottle]
    throttle_scope = "auth_token"

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            201: TokenResponseSerializer,
            400: ErrorSerializer,
            401: ErrorSerializer,
            429: ErrorSerializer,  # the sign-in lockout (config.signin) or the rate limit
        },
        summary="Sign a scanning device in (staff username and password → device token)",
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device, raw_token = sign_in_device(
            username=data.validated_data["username"],
            password=data.validated_data["password"],
            device_name=data.validated_data["device_name"],
            request=request._request,  # Django's own: the lockout flags it and reads its address
        )
        return Response(
            {
                "token": raw_token,
                "staff": device.staff.display_name,
                "provider": device.staff.provider.name,
                "provider_code": device.staff.provider.code,
            },
            status=status.HTTP_201_CREATED,
        )
