from datetime import datetime, time, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from observability import rollups


class Command(BaseCommand):
    help = "Refresh the dashboards' rollups now (what the scheduler does every minute), or rebuild a range."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="Rebuild every hour from this date (YYYY-MM-DD, UTC) to now.")

    def handle(self, *args, since, **options):
        if since:
            try:
                start = timezone.make_aware(datetime.combine(datetime.strptime(since, "%Y-%m-%d").date(), time()))
            except ValueError:
                raise CommandError(f"Cannot read {since!r} as YYYY-MM-DD.") from None
            hours = rollups.rebuild(start, timezone.now() + timedelta(hours=1))
        else:
            hours = rollups.refresh()
            if hours is None:
                raise CommandError("Another refresh is running; try again when it is done.")
        self.stdout.write(f"Rebuilt {hours} hour(s) of rollups.")
