"""Re-save every stored secret with the first key (after adding a new one in front)."""

from django.core.management.base import BaseCommand
from django.db import transaction

from crm.fields import secret_fields


class Command(BaseCommand):
    help = "Encrypt every stored secret again with the current first key (key rotation)."

    def handle(self, *args, **options):
        total = 0
        for model, field in secret_fields():
            with transaction.atomic():
                for row in model._base_manager.exclude(**{field.name: None}).iterator():
                    model._base_manager.filter(pk=row.pk).update(
                        **{field.name: getattr(row, field.name)}
                    )
                    total += 1
        self.stdout.write(f"Re-encrypted {total} secrets.")
