from django.core.management.base import BaseCommand

from observability.retention import prune_request_log


class Command(BaseCommand):
    help = "Delete raw request-log rows past GATEWAY_REQUEST_LOG_RETENTION_DAYS (already rolled up), in batches."

    def handle(self, *args, **options):
        self.stdout.write(f"Deleted {prune_request_log()} request-log row(s).")
