"""On PostgreSQL, the database itself keeps a closed month closed (DESIGN.md §6.3):

- no redemption is inserted into a closed month (updates and deletes are refused anyway:
  vouchers 0002); no void of a closed month's redemption without its adjustment (kind `void`,
  written first, in an open month); no adjustment inserted into, changed in or deleted from a
  closed month;
- statements exist only for closed months; once a statement is approved its figures are final
  and its lines frozen (the month cannot be settled again while it is approved), its state only
  moves forward (approved → paid); once the month is locked (all paid) nothing of it changes,
  and a closed month never reopens.

SQLite, the embedded demo database, keeps the same rules in the services (billing.services,
vouchers.services). TRUNCATE (test teardown) is not a row operation and still works.
"""

from django.db import migrations


POSTGRES = """
CREATE OR REPLACE FUNCTION billing_month_is_closed(m date) RETURNS boolean AS $$
    SELECT EXISTS (SELECT 1 FROM vouchers_closedmonth WHERE month = m)
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION billing_refuse(msg text) RETURNS void AS $$
BEGIN
    RAISE EXCEPTION '%', msg USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION billing_redemption_month_open() RETURNS trigger AS $$
BEGIN
    IF billing_month_is_closed(NEW.service_month) THEN
        PERFORM billing_refuse('the month ' || NEW.service_month || ' is closed: no new redemption');
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_redemption_month_open BEFORE INSERT ON vouchers_redemption
    FOR EACH ROW EXECUTE FUNCTION billing_redemption_month_open();

CREATE OR REPLACE FUNCTION billing_void_month_open() RETURNS trigger AS $$
BEGIN
    IF billing_month_is_closed((SELECT service_month FROM vouchers_redemption WHERE id = NEW.redemption_id))
       AND NOT EXISTS (SELECT 1 FROM billing_adjustment
                       WHERE redemption_id = NEW.redemption_id AND kind = 'void') THEN
        PERFORM billing_refuse('the month of redemption ' || NEW.redemption_id
                               || ' is closed: a void needs its adjustment');
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_void_month_open BEFORE INSERT ON vouchers_redemptionvoid
    FOR EACH ROW EXECUTE FUNCTION billing_void_month_open();

CREATE OR REPLACE FUNCTION billing_adjustment_month_open() RETURNS trigger AS $$
BEGIN
    IF (TG_OP <> 'INSERT' AND billing_month_is_closed(OLD.month))
       OR (TG_OP <> 'DELETE' AND billing_month_is_closed(NEW.month)) THEN
        PERFORM billing_refuse('adjustments of a closed month are final: ' || TG_OP || ' refused');
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_adjustment_month_open BEFORE INSERT OR UPDATE OR DELETE ON billing_adjustment
    FOR EACH ROW EXECUTE FUNCTION billing_adjustment_month_open();

CREATE OR REPLACE FUNCTION billing_period_is_final() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.state <> 'open' THEN
            PERFORM billing_refuse('a closed month is never deleted');
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.state = 'locked' THEN
        PERFORM billing_refuse('the month ' || OLD.month || ' is locked: nothing changes');
    END IF;
    IF OLD.state <> 'open' AND (NEW.state = 'open' OR NEW.month <> OLD.month) THEN
        PERFORM billing_refuse('a closed month never reopens');
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_period_is_final BEFORE UPDATE OR DELETE ON billing_settlementperiod
    FOR EACH ROW EXECUTE FUNCTION billing_period_is_final();

-- 'open' | 'closed' | 'locked' of a statement's period, and whether a statement of it is approved.
CREATE OR REPLACE FUNCTION billing_period_state(pid bigint) RETURNS text AS $$
    SELECT state FROM billing_settlementperiod WHERE id = pid
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION billing_statement_is_final() RETURNS trigger AS $$
DECLARE
    frozen boolean;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF billing_period_state(NEW.period_id) <> 'closed' THEN
            PERFORM billing_refuse('statements are drafted for a closed, unlocked month only');
        END IF;
        IF EXISTS (SELECT 1 FROM billing_statement WHERE period_id = NEW.period_id
                   AND state IN ('approved', 'paid')) THEN
            PERFORM billing_refuse('a statement of this month is approved: it is not settled again');
        END IF;
        RETURN NEW;
    END IF;
    IF billing_period_state(OLD.period_id) = 'locked' THEN
        PERFORM billing_refuse('the month is locked: its statements do not change');
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.state IN ('approved', 'paid') THEN
            PERFORM billing_refuse('an approved statement is never deleted');
        END IF;
        RETURN OLD;
    END IF;
    frozen := OLD.state IN ('approved', 'paid');
    IF frozen AND (
        (NEW.period_id, NEW.provider_id, NEW.redemption_count, NEW.void_count, NEW.adjustment_count,
         NEW.total_amount, NEW.government_total, NEW.senior_total,
         NEW.prepared_at, NEW.prepared_by_id, NEW.prepared_by_job,
         NEW.reviewed_at, NEW.reviewed_by_id, NEW.review_note,
         NEW.approved_at, NEW.approved_by_id, NEW.due_date)
        IS DISTINCT FROM
        (OLD.period_id, OLD.provider_id, OLD.redemption_count, OLD.void_count, OLD.adjustment_count,
         OLD.total_amount, OLD.government_total, OLD.senior_total,
         OLD.prepared_at, OLD.prepared_by_id, OLD.prepared_by_job,
         OLD.reviewed_at, OLD.reviewed_by_id, OLD.review_note,
         OLD.approved_at, OLD.approved_by_id, OLD.due_date)
        OR OLD.state = 'paid'
        OR NEW.state NOT IN ('approved', 'paid')
    ) THEN
        PERFORM billing_refuse('statement ' || OLD.id || ' is approved: its figures are final');
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_statement_is_final BEFORE INSERT OR UPDATE OR DELETE ON billing_statement
    FOR EACH ROW EXECUTE FUNCTION billing_statement_is_final();

CREATE OR REPLACE FUNCTION billing_statement_line_is_final() RETURNS trigger AS $$
DECLARE
    sid bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN sid := OLD.statement_id; ELSE sid := NEW.statement_id; END IF;
    IF EXISTS (SELECT 1 FROM billing_statement s JOIN billing_settlementperiod p ON p.id = s.period_id
               WHERE s.id = sid AND (s.state IN ('approved', 'paid') OR p.state <> 'closed'))
       OR (TG_OP = 'UPDATE' AND OLD.statement_id <> NEW.statement_id) THEN
        PERFORM billing_refuse('the lines of an approved statement (or a locked month) are final');
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_statement_line_is_final BEFORE INSERT OR UPDATE OR DELETE ON billing_statementline
    FOR EACH ROW EXECUTE FUNCTION billing_statement_line_is_final();
"""

POSTGRES_UNDO = """
DROP TRIGGER IF EXISTS billing_statement_line_is_final ON billing_statementline;
DROP TRIGGER IF EXISTS billing_statement_is_final ON billing_statement;
DROP TRIGGER IF EXISTS billing_period_is_final ON billing_settlementperiod;
DROP TRIGGER IF EXISTS billing_adjustment_month_open ON billing_adjustment;
DROP TRIGGER IF EXISTS billing_void_month_open ON vouchers_redemptionvoid;
DROP TRIGGER IF EXISTS billing_redemption_month_open ON vouchers_redemption;
DROP FUNCTION IF EXISTS billing_statement_line_is_final();
DROP FUNCTION IF EXISTS billing_statement_is_final();
DROP FUNCTION IF EXISTS billing_period_state(bigint);
DROP FUNCTION IF EXISTS billing_period_is_final();
DROP FUNCTION IF EXISTS billing_adjustment_month_open();
DROP FUNCTION IF EXISTS billing_void_month_open();
DROP FUNCTION IF EXISTS billing_redemption_month_open();
DROP FUNCTION IF EXISTS billing_refuse(text);
DROP FUNCTION IF EXISTS billing_month_is_closed(date);
"""


def forbid(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES, params=None)


def allow(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_UNDO, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_settlement_life"), ("vouchers", "0007_visits_and_proof_of_service")]
    operations = [migrations.RunPython(forbid, allow)]
