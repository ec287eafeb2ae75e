# The inbox's company column loses its PostgreSQL constraint (its check locked the company's
# row at every group INSERT of the webhook fast path); deleting companies deletes their
# deliveries by a statement-level trigger instead, as ON DELETE CASCADE did.

import django.db.models.deletion
from django.db import migrations, models

FUNCTION = "webhook_inbox_delete_deliveries_of_company"
TRIGGER = "accounts_company_deletes_webhook_deliveries"

CREATE = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM webhook_inbox_delivery AS d USING gone WHERE d.company_id = gone.id;
    RETURN NULL;
END $$;
CREATE TRIGGER {TRIGGER} AFTER DELETE ON accounts_company REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}();
"""
DROP = f"DROP TRIGGER IF EXISTS {TRIGGER} ON accounts_company; DROP FUNCTION IF EXISTS {FUNCTION}();"


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_merge_language"),
        ("webhook_inbox", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(CREATE, DROP),
        migrations.AlterField(
            model_name="delivery",
            name="company",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="accounts.company",
            ),
        ),
    ]
