"""The dashboards' filters, read from the query string so a view can be shared as a URL."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from observability.rollups import DAY, HOUR, floor_day, floor_hour

PERIODS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "90d": "Last 90 days"}
BUCKETS = {"hour": "Hour", "day": "Day"}
# Hour buckets over a longer span would draw thousands of points and read thousands of rows.
MAX_HOURLY_SPAN = timedelta(days=14)


@dataclass(frozen=True)
class Filters:
    start: datetime  # inclusive, on a bucket edge
    end: datetime  # exclusive, on a bucket edge
    bucket: str  # "hour" or "day"
    key_prefix: str = ""
    model_name: str = ""
    team: str = ""  # a team's name

    @property
    def step(self) -> timedelta:
        return HOUR if self.bucket == "hour" else DAY


class FilterForm(forms.Form):
    period = forms.ChoiceField(choices=[("", "Custom dates"), *PERIODS.items()], required=False, initial="7d")
    start = forms.DateField(required=False, help_text="YYYY-MM-DD (UTC), with end instead of a period.")
    end = forms.DateField(required=False, help_text="YYYY-MM-DD, inclusive.")
    bucket = forms.ChoiceField(choices=[("", "Auto"), *BUCKETS.items()], required=False)
    team = forms.CharField(required=False, max_length=100, label="Team")
    key = forms.CharField(required=False, max_length=8, label="Key prefix")
    model = forms.CharField(required=False, max_length=100, label="Model")

    def clean(self):
        data = super().clean()
        if data.get("start") or data.get("end"):
            if not (data.get("start") and data.get("end")):
                raise forms.ValidationError("Give both start and end dates, or choose a period.")
            if data["start"] > data["end"]:
                raise forms.ValidationError("The start date is after the end date.")
        span = self._span(data, timezone.now())
        if data.get("bucket") == "hour" and span[1] - span[0] > MAX_HOURLY_SPAN:
            raise forms.ValidationError("Hour buckets are offered for up to 14 days; choose day buckets.")
        return data

    def filters(self, now: datetime | None = None) -> Filters:
        """The chosen filters; call after is_valid()."""
        data = self.cleaned_data
        start, end = self._span(data, now or timezone.now())
        bucket = data.get("bucket") or ("hour" if end - start <= 2 * DAY else "day")
        if bucket == "day":
            start, end = floor_day(start), floor_day(end - timedelta(microseconds=1)) + DAY
        return Filters(
            start=start,
            end=end,
            bucket=bucket,
            key_prefix=data.get("key") or "",
            model_name=data.get("model") or "",
            team=data.get("team") or "",
        )

    @staticmethod
    def _span(data: dict, now: datetime) -> tuple[datetime, datetime]:
        if data.get("start") and data.get("end"):
            return (
                timezone.make_aware(datetime.combine(data["start"], time())),
                timezone.make_aware(datetime.combine(data["end"], time())) + DAY,
            )
        period = data.get("period") or "7d"
        end = floor_hour(now) + HOUR
        if period == "24h":
            return end - DAY, end
        days = int(period.removesuffix("d"))
        return floor_day(now) - (days - 1) * DAY, floor_day(now) + DAY


def filter_form(query) -> FilterForm:
    """The form bound to the query string, with the default period when none is given."""
    data = query.copy()
    if not any(data.get(name) for name in ("period", "start", "end")):
        data["period"] = "7d"
    return FilterForm(data)
