"""A senior's "this service did not happen" (placeholder: filled by the disputes change)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("vouchers", "0004_reissue_and_revoked_at")]

    operations = []
