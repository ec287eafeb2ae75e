# A conversation names its source by (platform, source id) instead of one foreign key per
# channel: a new channel needs no column here. Deleting a source still deletes its
# conversations inside PostgreSQL: each channel's migration puts the trigger of
# messaging.db.conversations_follow on its source table (channels_integrations 0007).

from django.db import migrations, models

import messaging.channels
from messaging import db


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0008_outbox"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="source_id",
            field=models.BigIntegerField(null=True),
        ),
        migrations.RunSQL(
            "UPDATE messaging_conversation "
            "SET source_id = COALESCE(whatsapp_number_id, telegram_account_id, email_account_id)",
            migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="conversation",
            name="source_id",
            field=models.BigIntegerField(),
        ),
        migrations.RemoveConstraint(
            model_name="conversation",
            name="conversation_one_source_matching_platform",
        ),
        migrations.RemoveConstraint(
            model_name="conversation",
            name="conversation_unique_whatsapp_thread",
        ),
        migrations.RemoveConstraint(
            model_name="conversation",
            name="conversation_unique_telegram_thread",
        ),
        migrations.RemoveConstraint(
            model_name="conversation",
            name="conversation_unique_email_thread",
        ),
        migrations.RemoveField(model_name="conversation", name="email_account"),
        migrations.RemoveField(model_name="conversation", name="telegram_account"),
        migrations.RemoveField(model_name="conversation", name="whatsapp_number"),
        migrations.AlterField(
            model_name="conversation",
            name="platform",
            field=models.CharField(choices=messaging.channels.platform_choices, max_length=10),
        ),
        migrations.AddConstraint(
            model_name="conversation",
            constraint=models.UniqueConstraint(
                fields=("platform", "source_id", "external_thread_id"),
                name="conversation_unique_thread",
            ),
        ),
        migrations.RunSQL(db.CREATE_FUNCTION, db.DROP_FUNCTION),
    ]
