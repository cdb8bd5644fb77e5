from argparse import ArgumentTypeError
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.dateparse import parse_datetime

from gateway.keys.services import api_key_create
from gateway.models import BudgetPeriod, Team


def _usd(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ArgumentTypeError(f"{text!r} is not an amount in USD") from None


class Command(BaseCommand):
    help = "Create an API key and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner", help="Username of the key's owner.")
        parser.add_argument("--endpoints", nargs="*", default=[], help="Endpoints it may call (default: all).")
        parser.add_argument("--models", nargs="*", default=[], help="Model names it may call (default: all).")
        parser.add_argument("--expires", help="Expiry as ISO 8601, e.g. 2027-01-01T00:00:00Z.")
        parser.add_argument("--team", help="Name of the key's team (created if there is none).")
        parser.add_argument("--requests-per-minute", type=int, help="Default: the team's, else the global default.")
        parser.add_argument("--tokens-per-minute", type=int, help="Default: the team's, else the global default.")
        parser.add_argument("--budget-usd", type=_usd, help="Spend cap of the key per budget period (default: none).")
        parser.add_argument("--budget-period", choices=BudgetPeriod.values, default=BudgetPeriod.MONTH)

    def handle(self, *args, name, owner, endpoints, models, expires, team, **options):
        owner_user = None
        if owner:
            try:
                owner_user = get_user_model().objects.get(username=owner)
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user named {owner!r}.") from None
        expires_at = None
        if expires:
            expires_at = parse_datetime(expires)
            if expires_at is None:
                raise CommandError(f"Cannot read {expires!r} as an ISO 8601 date and time.")
        # One transaction: a key refused as invalid leaves no team behind.
        with transaction.atomic():
            team_row, team_created = Team.objects.get_or_create(name=team) if team else (None, False)
            try:
                key, full_key = api_key_create(
                    name=name,
                    owner=owner_user,
                    team=team_row,
                    endpoints=endpoints,
                    models=models,
                    expires_at=expires_at,
                    requests_per_minute=options["requests_per_minute"],
                    tokens_per_minute=options["tokens_per_minute"],
                    budget_usd=options["budget_usd"],
                    budget_period=options["budget_period"],
                    actor="createapikey command",
                )
            except ValidationError as exc:
                raise CommandError(exc.messages) from None
        if team_created:
            self.stderr.write(f"Created team {team!r}.")
        self.stderr.write(f"Created key {key.name!r} (gw_{key.prefix}…). It is shown this once:")
        self.stdout.write(full_key)
