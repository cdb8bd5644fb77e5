import time

from django.core.management.base import BaseCommand, CommandError

from observability.seeding import seed_request_logs


class Command(BaseCommand):
    help = "Insert synthetic request-log history (for demos and measuring) and roll it up."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, required=True, help="How many request-log rows to add.")
        parser.add_argument("--days", type=int, default=30, help="Spread them over this many days up to now.")
        parser.add_argument("--keys", type=int, default=20, help="Demo API keys to spread them over.")
        parser.add_argument("--seed", type=int, default=0, help="Random seed (same seed, same rows).")

    def handle(self, *args, rows, days, keys, seed, **options):
        if rows < 1 or days < 1 or keys < 1:
            raise CommandError("--rows, --days and --keys must be at least 1.")
        started = time.perf_counter()
        result = seed_request_logs(rows=rows, days=days, keys=keys, seed=seed)
        self.stdout.write(
            f"Added {result.rows} rows from {result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC "
            f"over {result.keys} keys and {result.versions} versions, rolled up, "
            f"in {time.perf_counter() - started:.1f} s."
        )
