"""Contracts the database keeps apart (placeholder: filled by the providers-pages change)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("providers", "0001_initial")]

    operations = []
