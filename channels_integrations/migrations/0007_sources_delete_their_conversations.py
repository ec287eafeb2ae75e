# Each channel's source table deletes its conversations with it (see messaging.db): what the
# conversations' foreign keys to these tables did with ON DELETE CASCADE until messaging 0009.

from django.db import migrations

from messaging.db import conversations_follow


class Migration(migrations.Migration):
    dependencies = [
        ("channels_integrations", "0006_outbox"),
        ("messaging", "0009_conversation_source"),
    ]

    operations = [
        conversations_follow("channels_integrations_whatsappnumber", "whatsapp"),
        conversations_follow("channels_integrations_telegramaccount", "telegram"),
        conversations_follow("channels_integrations_emailaccount", "email"),
    ]
