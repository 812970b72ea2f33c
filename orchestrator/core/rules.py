"""The rules that apply to one account: policy + jurisdiction overlays + creditor profile.

Compiled once per distinct (places, profile, zones) and shared by every account with the
same combination, so a million accounts cost a handful of compilations. Limits and pauses
accumulate, hours intersect, holidays add (docs/configuration.md, ``jurisdictions``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from typing import TypeVar

from orchestrator.config.models import (
    Cadences,
    Config,
    HolidayRule,
    Limit,
    Overlay,
    Pause,
    PlanBounds,
    PromiseBounds,
    ValidationNotice,
)
from orchestrator.core.account import Account
from orchestrator.core.hours import HolidayCalendar, HoursRule, effective_hours
from orchestrator.core.records import Reason
from orchestrator.core.zones import Zones, candidate_zones


@dataclass(eq=False)
class AccountRules:
    config: Config
    zones: Zones
    overlays: tuple[Overlay, ...]
    country: str | None
    region: str | None
    _hours: dict[str, HoursRule] = field(default_factory=dict)
    _holidays: dict[str, HolidayCalendar | None] = field(default_factory=dict)

    @property
    def cadences(self) -> Cadences:
        return self.config.cadences

    @property
    def preferred_time(self) -> time:
        return self.config.policy.preferred_time

    @cached_property
    def after_kept(self) -> timedelta:
        return self.config.policy.suppression.after_kept.delta

    @cached_property
    def promise_grace(self) -> timedelta:
        return self.config.policy.suppression.promise_grace.delta

    @cached_property
    def promise_bounds(self) -> PromiseBounds:
        """The policy's promise bounds, each key an overlay gives replacing the policy's."""
        return _overridden(self.config.policy.promises, [o.promises for o in self.overlays])

    @cached_property
    def plan_bounds(self) -> PlanBounds:
        """The policy's plan bounds, each key an overlay gives replacing the policy's."""
        return _overridden(self.config.policy.plans, [o.plans for o in self.overlays])

    @cached_property
    def settlement_cap(self) -> Decimal | None:
        """The most a settlement may waive, as a share of the balance: the smallest cap
        of the policy's ``settlements`` and of every overlay's (caps only tighten);
        ``None``: no cap but the creditor's own authority."""
        caps = [self.config.policy.settlements.max_discount]
        caps += [o.settlements.max_discount for o in self.overlays if o.settlements is not None]
        given = [cap for cap in caps if cap is not None]
        return min(given) if given else None

    @cached_property
    def validation_notice(self) -> ValidationNotice | None:
        """The validation notice the account gets: the last overlay's that sets one (in
        the order they apply: country, region, creditor profile), else the policy's."""
        for overlay in reversed(self.overlays):
            if overlay.validation_notice is not None:
                return overlay.validation_notice
        return self.config.policy.validation_notice

    @cached_property
    def limits(self) -> list[Limit]:
        out = list(self.config.policy.limits)
        for overlay in self.overlays:
            out.extend(overlay.limits)
        return out

    @cached_property
    def pauses(self) -> list[Pause]:
        out = list(self.config.policy.pauses)
        for overlay in self.overlays:
            out.extend(overlay.pauses)
        return out

    def hours_for(self, channel: str) -> HoursRule:
        rule = self._hours.get(channel)
        if rule is None:
            rule = effective_hours(self.config.policy, list(self.overlays), channel)
            self._hours[channel] = rule
        return rule

    def holidays_for(self, channel: str) -> HolidayCalendar | None:
        if channel in self._holidays:
            return self._holidays[channel]
        rules: list[HolidayRule] = []
        if self.config.policy.holidays is not None:
            rules.append(self.config.policy.holidays)
        rules.extend(o.holidays for o in self.overlays if o.holidays is not None)
        calendar = HolidayCalendar.for_channel(rules, channel, self.country, self.region)
        self._holidays[channel] = calendar
        return calendar

    def closed_reason(self, t: datetime, channel: str) -> str:
        """Why ``t`` is not permitted: a public holiday in some zone, else quiet hours."""
        calendar = self.holidays_for(channel)
        if calendar is not None:
            for zone in self.zones.candidates:
                if calendar.is_holiday(t.astimezone(zone).date()):
                    return Reason.holiday
        return Reason.quiet_hours


_Terms = TypeVar("_Terms", PromiseBounds, PlanBounds)


def _overridden(base: _Terms, overrides: list[_Terms | None]) -> _Terms:
    """``base`` with the keys each override sets (in its file) replaced, in order."""
    for override in overrides:
        if override is not None:
            base = base.model_copy(
                update={key: getattr(override, key) for key in override.model_fields_set}
            )
    return base


class RuleBook:
    """Compiles and caches ``AccountRules`` for a configuration."""

    def __init__(self, config: Config):
        self.config = config
        self._cache: dict[tuple[object, ...], AccountRules] = {}
        self._zones: dict[tuple[object, ...], Zones] = {}

    def for_account(self, account: Account) -> AccountRules:
        # Zones depend only on these fields; caching them skips a phone parse per call.
        # The phone's zones where known (an account read from the database carries them:
        # its phone, encrypted, need not be decrypted), else the phone itself.
        known = account.phone_zones
        zone_key = (
            account.timezone,
            account.country,
            account.region,
            account.postal_code,
            account.city,
            ("zones", known) if known is not None else ("phone", account.phone),
        )
        zones = self._zones.get(zone_key)
        if zones is None:
            if len(self._zones) > 200_000:
                self._zones.clear()
            zones = candidate_zones(account, self.config.policy.timezone)
            self._zones[zone_key] = zones
        creditor = self.config.creditor(account.creditor)
        profile = creditor.policy if creditor is not None else None
        places = tuple(account.places)
        key = (places, profile, zones)
        rules = self._cache.get(key)
        if rules is None:
            policy = self.config.policy
            overlays = [policy.jurisdictions[p] for p in places if p in policy.jurisdictions]
            if profile and profile in policy.profiles:
                overlays.append(policy.profiles[profile])
            country = account.country.upper() if account.country else None
            region = account.region.upper() if account.region else None
            rules = AccountRules(self.config, zones, tuple(overlays), country, region)
            self._cache[key] = rules
        return rules
