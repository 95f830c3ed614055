"""The database itself keeps the policy rules of the policies issue:

- a published (active or retired) version's tiers and rules cannot be inserted, changed or
  deleted, nor its name, code, start or conditions changed: a change is a new draft. Its status
  only moves forward (active → retired) and its window is closed once, when it is retired
  (an active version with a planned end may be cut short then), never reopened or moved;
- a rule can grant only a tier of its own policy, and a determination names a tier of its own
  policy (composite foreign keys on PostgreSQL, triggers on SQLite);
- at most one published version is in force on any date (an exclusion constraint, PostgreSQL).

SQLite, the embedded demo database, has the same triggers except for deletes (its test flush
deletes rows); PostgreSQL refuses those too.
"""

from django.db import migrations

FIXED = "a published policy is fixed: its tiers and rules cannot change (make a new draft)"

POSTGRES = f"""
CREATE OR REPLACE FUNCTION eligibility_policy_is_published(pid bigint) RETURNS boolean AS $$
    SELECT status <> 'draft' FROM eligibility_policy WHERE id = pid
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION eligibility_published_terms_are_fixed() RETURNS trigger AS $$
BEGIN
    IF (TG_OP <> 'INSERT' AND eligibility_policy_is_published(OLD.policy_id))
       OR (TG_OP <> 'DELETE' AND eligibility_policy_is_published(NEW.policy_id)) THEN
        RAISE EXCEPTION '{FIXED}: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER eligibility_tier_fixed BEFORE INSERT OR UPDATE OR DELETE ON eligibility_tier
    FOR EACH ROW EXECUTE FUNCTION eligibility_published_terms_are_fixed();
CREATE TRIGGER eligibility_policyrule_fixed BEFORE INSERT OR UPDATE OR DELETE ON eligibility_policyrule
    FOR EACH ROW EXECUTE FUNCTION eligibility_published_terms_are_fixed();

CREATE OR REPLACE FUNCTION eligibility_published_policy_is_fixed() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'draft' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE'
       OR (NEW.code, NEW.version, NEW.name, NEW.name_en, NEW.effective_from)
          IS DISTINCT FROM (OLD.code, OLD.version, OLD.name, OLD.name_en, OLD.effective_from)
       OR NEW.population IS DISTINCT FROM OLD.population
       OR NEW.status = 'draft'
       OR (OLD.status = 'retired' AND NEW.status <> 'retired')
       OR (NEW.effective_until IS DISTINCT FROM OLD.effective_until AND OLD.effective_until IS NOT NULL
           AND NOT (OLD.status = 'active' AND NEW.status = 'retired' AND NEW.effective_until < OLD.effective_until)) THEN
        RAISE EXCEPTION '{FIXED}: % of policy % refused', TG_OP, OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER eligibility_policy_fixed BEFORE UPDATE OR DELETE ON eligibility_policy
    FOR EACH ROW EXECUTE FUNCTION eligibility_published_policy_is_fixed();

ALTER TABLE eligibility_policyrule ADD CONSTRAINT policyrule_tier_of_own_policy
    FOREIGN KEY (policy_id, tier_id) REFERENCES eligibility_tier (policy_id, id);
ALTER TABLE eligibility_determination ADD CONSTRAINT determination_tier_of_its_policy
    FOREIGN KEY (policy_id, tier_id) REFERENCES eligibility_tier (policy_id, id);
ALTER TABLE eligibility_policy ADD CONSTRAINT policy_one_published_per_date
    EXCLUDE USING gist (daterange(effective_from, effective_until, '[]') WITH &&) WHERE (status <> 'draft');
"""
POSTGRES_UNDO = """
ALTER TABLE eligibility_policy DROP CONSTRAINT IF EXISTS policy_one_published_per_date;
ALTER TABLE eligibility_determination DROP CONSTRAINT IF EXISTS determination_tier_of_its_policy;
ALTER TABLE eligibility_policyrule DROP CONSTRAINT IF EXISTS policyrule_tier_of_own_policy;
DROP TRIGGER IF EXISTS eligibility_policy_fixed ON eligibility_policy;
DROP TRIGGER IF EXISTS eligibility_policyrule_fixed ON eligibility_policyrule;
DROP TRIGGER IF EXISTS eligibility_tier_fixed ON eligibility_tier;
DROP FUNCTION IF EXISTS eligibility_published_policy_is_fixed();
DROP FUNCTION IF EXISTS eligibility_published_terms_are_fixed();
DROP FUNCTION IF EXISTS eligibility_policy_is_published(bigint);
"""


def _sqlite_terms_fixed(table, when):
    return f"""
CREATE TRIGGER {table}_fixed_{when.lower()} BEFORE {when} ON {table}
WHEN {"(SELECT status FROM eligibility_policy WHERE id = OLD.policy_id) <> 'draft' OR " if when == "UPDATE" else ""}(SELECT status FROM eligibility_policy WHERE id = NEW.policy_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, '{FIXED}'); END;
"""


def _sqlite_own_tier(table, when):
    return f"""
CREATE TRIGGER {table}_own_tier_{when.lower()} BEFORE {when} ON {table}
WHEN NEW.tier_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM eligibility_tier WHERE id = NEW.tier_id AND policy_id = NEW.policy_id)
BEGIN SELECT RAISE(ABORT, 'the tier belongs to another policy'); END;
"""


SQLITE = [
    *(
        _sqlite_terms_fixed(t, w)
        for t in ("eligibility_tier", "eligibility_policyrule")
        for w in ("INSERT", "UPDATE")
    ),
    *(
        _sqlite_own_tier(t, w)
        for t in ("eligibility_policyrule", "eligibility_determination")
        for w in ("INSERT", "UPDATE")
    ),
    f"""
CREATE TRIGGER eligibility_policy_fixed_update BEFORE UPDATE ON eligibility_policy
WHEN OLD.status <> 'draft' AND (
    NEW.code IS NOT OLD.code OR NEW.version IS NOT OLD.version OR NEW.name IS NOT OLD.name
    OR NEW.name_en IS NOT OLD.name_en OR NEW.effective_from IS NOT OLD.effective_from
    OR NEW.population IS NOT OLD.population OR NEW.status = 'draft'
    OR (OLD.status = 'retired' AND NEW.status <> 'retired')
    OR (NEW.effective_until IS NOT OLD.effective_until AND OLD.effective_until IS NOT NULL
        AND NOT (OLD.status = 'active' AND NEW.status = 'retired' AND NEW.effective_until < OLD.effective_until)))
BEGIN SELECT RAISE(ABORT, '{FIXED}'); END;
""",
]
SQLITE_TRIGGERS = [
    *(f"{t}_fixed_{w}" for t in ("eligibility_tier", "eligibility_policyrule") for w in ("insert", "update")),
    *(
        f"{t}_own_tier_{w}"
        for t in ("eligibility_policyrule", "eligibility_determination")
        for w in ("insert", "update")
    ),
    "eligibility_policy_fixed_update",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement, params=None)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_UNDO, params=None)
    elif vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


class Migration(migrations.Migration):
    dependencies = [("eligibility", "0007_default_policy_as_data")]
    operations = [migrations.RunPython(forward, backward)]
