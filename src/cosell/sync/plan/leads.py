"""Leads, the pure part: which referrals are leads and how their account is matched (`run/leads.py` syncs them)."""

from __future__ import annotations

from typing import Any

from cosell.partnercenter.models import (
    Referral,
    ReferralDirection,
    ReferralQualification,
    ReferralStatus,
)

LEAD = "Lead"


LEAD_QUALIFICATIONS = (ReferralQualification.MARKETING_QUALIFIED, ReferralQualification.DIRECT)


def is_lead_referral(referral: Referral) -> bool:
    """Whether a referral is a lead: incoming, New, marketing-qualified or direct (spec §3.6)."""
    return (
        referral.direction == ReferralDirection.INCOMING
        and referral.status == ReferralStatus.NEW
        and referral.qualification in LEAD_QUALIFICATIONS
    )


def lead_account_match(name: Any, postal: Any, country: Any) -> tuple[str, str, str]:
    """How an account is matched: Name + postal code + country, case-insensitive (as SOQL's =)."""

    def part(value: Any) -> str:
        return str(value or "").casefold()

    return part(name), part(postal), part(country)
