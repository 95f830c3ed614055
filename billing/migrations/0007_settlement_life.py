"""The life of a month (issue 10): periods open → closed → locked, statements draft → reviewed →
approved → paid with who and when, four eyes in the database, adjustments and reconciliation
checks. A month settled before this becomes `closed` with draft statements prepared by whoever
settled it (or, where nobody was recorded, by the job named below)."""



import django.db.models.deletion
import django.db.models.expressions
import django.db.models.functions.math
import djmoney.models.fields
from django.conf import settings
from django.db import migrations, models


BEFORE = "settle (before issue 10)"


def settled_becomes_closed(apps, schema_editor):
    Period = apps.get_model("billing", "SettlementPeriod")
    Statement = apps.get_model("billing", "Statement")
    Period.objects.filter(state="settled", settled_by__isnull=True).update(settled_by_job=BEFORE)
    Period.objects.filter(state="settled").update(state="closed")
    for period in Period.objects.exclude(state="open").iterator():
        Statement.objects.filter(period=period).update(
            prepared_at=period.settled_at, prepared_by=period.settled_by_id, prepared_by_job=period.settled_by_job
        )


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0006_roles_for_cards_and_providers'),
        ('providers', '0003_visit_rounding'),
        ('vouchers', '0007_visits_and_proof_of_service'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Adjustment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('void', 'Void after settlement'), ('correction', 'Correction'), ('finding', 'Integrity finding')], max_length=12, verbose_name='kind')),
                ('month', models.DateField(verbose_name='settled in month')),
                ('tier_code', models.SlugField(max_length=30, verbose_name='tier')),
                ('quantity', models.DecimalField(decimal_places=2, default=0, max_digits=12, verbose_name='quantity')),
                ('amount_currency', djmoney.models.fields.CurrencyField(choices=[('CNY', 'Chinese Yuan')], default='CNY', editable=False, max_length=3)),
                ('amount', djmoney.models.fields.MoneyField(decimal_places=2, max_digits=14, verbose_name='amount')),
                ('government_share_currency', djmoney.models.fields.CurrencyField(choices=[('CNY', 'Chinese Yuan')], default='CNY', editable=False, max_length=3)),
                ('government_share', djmoney.models.fields.MoneyField(decimal_places=2, max_digits=14, verbose_name='government share')),
                ('senior_share_currency', djmoney.models.fields.CurrencyField(choices=[('CNY', 'Chinese Yuan')], default='CNY', editable=False, max_length=3)),
                ('senior_share', djmoney.models.fields.MoneyField(decimal_places=2, max_digits=14, verbose_name='senior co-pay')),
                ('reason', models.CharField(max_length=200, verbose_name='reason')),
                ('created_at', models.DateTimeField(verbose_name='recorded at')),
                ('created_by_job', models.CharField(blank=True, max_length=60, verbose_name='recorded by (job)')),
            ],
            options={
                'verbose_name': 'adjustment',
                'verbose_name_plural': 'adjustments',
                'ordering': ['month', 'provider', 'id'],
            },
        ),
        migrations.CreateModel(
            name='ReconciliationCheck',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('code', models.SlugField(max_length=40, verbose_name='check')),
                ('status', models.CharField(choices=[('passed', 'Passed'), ('failed', 'Failed')], max_length=10, verbose_name='status')),
                ('failing_count', models.PositiveIntegerField(default=0, verbose_name='failing rows')),
                ('sample', models.JSONField(blank=True, default=list, verbose_name='first failing rows')),
                ('checked_at', models.DateTimeField(verbose_name='checked at')),
            ],
            options={
                'verbose_name': 'reconciliation check',
                'verbose_name_plural': 'reconciliation checks',
                'ordering': ['period', 'code'],
            },
        ),
        migrations.AlterModelOptions(
            name='statementline',
            options={'ordering': ['statement', 'kind', 'tier_code', 'service_item__code'], 'verbose_name': 'statement line', 'verbose_name_plural': 'statement lines'},
        ),
        migrations.RemoveConstraint(
            model_name='settlementperiod',
            name='period_state_valid',
        ),
        migrations.RemoveConstraint(
            model_name='settlementperiod',
            name='period_settled_has_time',
        ),
        migrations.RemoveConstraint(
            model_name='statementline',
            name='statement_line_unique',
        ),
        migrations.AddField(
            model_name='settlementperiod',
            name='locked_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='locked at'),
        ),
        migrations.AddField(
            model_name='settlementperiod',
            name='settled_by_job',
            field=models.CharField(blank=True, max_length=60, verbose_name='settled by (job)'),
        ),
        migrations.AddField(
            model_name='statement',
            name='adjustment_count',
            field=models.PositiveIntegerField(default=0, verbose_name='adjustments'),
        ),
        migrations.AddField(
            model_name='statement',
            name='approved_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='approved at'),
        ),
        migrations.AddField(
            model_name='statement',
            name='approved_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='approved by'),
        ),
        migrations.AddField(
            model_name='statement',
            name='due_date',
            field=models.DateField(blank=True, null=True, verbose_name='payment due'),
        ),
        migrations.AddField(
            model_name='statement',
            name='paid_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='payment recorded at'),
        ),
        migrations.AddField(
            model_name='statement',
            name='paid_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='payment recorded by'),
        ),
        migrations.AddField(
            model_name='statement',
            name='paid_on',
            field=models.DateField(blank=True, null=True, verbose_name='paid on'),
        ),
        migrations.AddField(
            model_name='statement',
            name='payment_reference',
            field=models.CharField(blank=True, max_length=100, verbose_name='payment reference'),
        ),
        migrations.AddField(
            model_name='statement',
            name='prepared_at',
            field=models.DateTimeField(null=True, verbose_name='prepared at'),
        ),
        migrations.AddField(
            model_name='statement',
            name='prepared_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='prepared by'),
        ),
        migrations.AddField(
            model_name='statement',
            name='prepared_by_job',
            field=models.CharField(blank=True, max_length=60, verbose_name='prepared by (job)'),
        ),
        migrations.AddField(
            model_name='statement',
            name='review_note',
            field=models.TextField(blank=True, verbose_name='review note'),
        ),
        migrations.AddField(
            model_name='statement',
            name='reviewed_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='reviewed at'),
        ),
        migrations.AddField(
            model_name='statement',
            name='reviewed_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='reviewed by'),
        ),
        migrations.AddField(
            model_name='statement',
            name='state',
            field=models.CharField(choices=[('draft', 'Draft'), ('reviewed', 'Reviewed'), ('approved', 'Approved'), ('paid', 'Paid')], default='draft', max_length=10, verbose_name='state'),
        ),
        migrations.AddField(
            model_name='statement',
            name='void_count',
            field=models.PositiveIntegerField(default=0, verbose_name='voided in the month'),
        ),
        migrations.AddField(
            model_name='statementline',
            name='kind',
            field=models.CharField(choices=[('service', 'Services'), ('adjustment', 'Adjustments')], default='service', max_length=10, verbose_name='kind'),
        ),
        migrations.AddField(
            model_name='statementline',
            name='void_count',
            field=models.PositiveIntegerField(default=0, verbose_name='voided in the month'),
        ),
        migrations.AlterField(
            model_name='settlementperiod',
            name='settled_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='settled by'),
        ),
        migrations.AlterField(
            model_name='settlementperiod',
            name='state',
            field=models.CharField(choices=[('open', 'Open'), ('closed', 'Closed'), ('locked', 'Locked')], default='open', max_length=10, verbose_name='state'),
        ),
        migrations.RunPython(settled_becomes_closed, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='statement',
            name='prepared_at',
            field=models.DateTimeField(verbose_name='prepared at'),
        ),
        migrations.AddIndex(
            model_name='statement',
            index=models.Index(fields=['state', 'due_date'], name='statement_state_due'),
        ),
        migrations.AddConstraint(
            model_name='settlementperiod',
            constraint=models.CheckConstraint(condition=models.Q(('state__in', ['open', 'closed', 'locked'])), name='period_state_valid'),
        ),
        migrations.AddConstraint(
            model_name='settlementperiod',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('locked_at__isnull', True), ('settled_at__isnull', True), ('state', 'open')), models.Q(('locked_at__isnull', True), ('settled_at__isnull', False), ('state', 'closed')), models.Q(('locked_at__isnull', False), ('settled_at__isnull', False), ('state', 'locked')), _connector='OR'), name='period_state_fields'),
        ),
        migrations.AddConstraint(
            model_name='settlementperiod',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('settled_at__isnull', True), ('settled_by__isnull', True), ('settled_by_job', '')), models.Q(('settled_at__isnull', False), models.Q(models.Q(('settled_by__isnull', False), ('settled_by_job', '')), models.Q(('settled_by__isnull', True), models.Q(('settled_by_job', ''), _negated=True)), _connector='OR')), _connector='OR'), name='period_settled_by_one'),
        ),
        migrations.AddConstraint(
            model_name='statement',
            constraint=models.CheckConstraint(condition=models.Q(('state__in', ['draft', 'reviewed', 'approved', 'paid'])), name='statement_state_valid'),
        ),
        migrations.AddConstraint(
            model_name='statement',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(models.Q(('prepared_at__isnull', True), ('prepared_by__isnull', True), ('prepared_by_job', '')), models.Q(('prepared_at__isnull', False), models.Q(models.Q(('prepared_by__isnull', False), ('prepared_by_job', '')), models.Q(('prepared_by__isnull', True), models.Q(('prepared_by_job', ''), _negated=True)), _connector='OR')), _connector='OR'), ('prepared_at__isnull', False)), name='statement_prepared_by_one'),
        ),
        migrations.AddConstraint(
            model_name='statement',
            constraint=models.CheckConstraint(condition=models.Q(('approved_by__isnull', True), ('prepared_by__isnull', True), models.Q(('approved_by', models.F('prepared_by')), _negated=True), _connector='OR'), name='statement_four_eyes'),
        ),
        migrations.AddConstraint(
            model_name='statement',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(models.Q(('reviewed_at__isnull', True), ('reviewed_by__isnull', True), ('state', 'draft')), models.Q(('reviewed_at__isnull', False), ('reviewed_by__isnull', False), ('state__in', ['reviewed', 'approved', 'paid'])), _connector='OR'), models.Q(models.Q(('approved_at__isnull', True), ('approved_by__isnull', True), ('due_date__isnull', True), ('state__in', ['draft', 'reviewed'])), models.Q(('approved_at__isnull', False), ('approved_by__isnull', False), ('due_date__isnull', False), ('state__in', ['approved', 'paid'])), _connector='OR'), models.Q(models.Q(('paid_at__isnull', True), ('paid_by__isnull', True), ('paid_on__isnull', True), ('payment_reference', ''), ('state__in', ['draft', 'reviewed', 'approved'])), models.Q(('paid_at__isnull', False), ('paid_by__isnull', False), ('paid_on__isnull', False), ('state', 'paid'), models.Q(('payment_reference', ''), _negated=True)), _connector='OR')), name='statement_state_fields'),
        ),
        migrations.AddConstraint(
            model_name='statementline',
            constraint=models.UniqueConstraint(fields=('statement', 'kind', 'tier_code', 'service_item'), name='statement_line_unique'),
        ),
        migrations.AddConstraint(
            model_name='statementline',
            constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['service', 'adjustment'])), name='statement_line_kind'),
        ),
        migrations.AddField(
            model_name='adjustment',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='recorded by'),
        ),
        migrations.AddField(
            model_name='adjustment',
            name='provider',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='adjustments', to='providers.provider'),
        ),
        migrations.AddField(
            model_name='adjustment',
            name='redemption',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='adjustments', to='vouchers.redemption', verbose_name='redemption'),
        ),
        migrations.AddField(
            model_name='adjustment',
            name='service_item',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='providers.serviceitem'),
        ),
        migrations.AddField(
            model_name='reconciliationcheck',
            name='period',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='checks', to='billing.settlementperiod'),
        ),
        migrations.AddIndex(
            model_name='adjustment',
            index=models.Index(fields=['month', 'provider'], name='adjustment_month_provider'),
        ),
        migrations.AddConstraint(
            model_name='adjustment',
            constraint=models.CheckConstraint(condition=models.Q(('kind__in', ['void', 'correction', 'finding'])), name='adjustment_kind_valid'),
        ),
        migrations.AddConstraint(
            model_name='adjustment',
            constraint=models.CheckConstraint(condition=models.Q(('amount', django.db.models.functions.math.Round(django.db.models.expressions.CombinedExpression(models.F('government_share'), '+', models.F('senior_share')), 2))), name='adjustment_shares_add_up'),
        ),
        migrations.AddConstraint(
            model_name='adjustment',
            constraint=models.CheckConstraint(condition=models.Q(('reason', ''), _negated=True), name='adjustment_has_reason'),
        ),
        migrations.AddConstraint(
            model_name='adjustment',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('created_at__isnull', True), ('created_by__isnull', True), ('created_by_job', '')), models.Q(('created_at__isnull', False), models.Q(models.Q(('created_by__isnull', False), ('created_by_job', '')), models.Q(('created_by__isnull', True), models.Q(('created_by_job', ''), _negated=True)), _connector='OR')), _connector='OR'), name='adjustment_by_one'),
        ),
        migrations.AddConstraint(
            model_name='adjustment',
            constraint=models.UniqueConstraint(condition=models.Q(('kind', 'void')), fields=('redemption',), name='adjustment_one_void_per_redemption'),
        ),
        migrations.AddConstraint(
            model_name='reconciliationcheck',
            constraint=models.UniqueConstraint(fields=('period', 'code'), name='reconciliation_check_one_per_period'),
        ),
        migrations.AddConstraint(
            model_name='reconciliationcheck',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['passed', 'failed'])), name='reconciliation_status'),
        ),
        migrations.AddConstraint(
            model_name='reconciliationcheck',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('failing_count', 0), ('status', 'passed')), models.Q(('failing_count__gt', 0), ('status', 'failed')), _connector='OR'), name='reconciliation_status_matches_count'),
        ),
    ]
