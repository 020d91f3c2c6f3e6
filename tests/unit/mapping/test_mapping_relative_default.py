from datetime import date

import pytest

from cosell.mapping import MappingError, load_mapping, new_salesforce_records, parse_mapping
from cosell.mapping.loader import default_mapping_text


def _with_close_date(extra: str) -> str:
    text = default_mapping_text()
    marker = "    transform: date\n"
    head, _, tail = text.partition(marker)
    tail = "\n".join(line for line in tail.split("\n") if "default_days_from_today" not in line)
    return head + marker + extra + tail


def test_the_default_mapping_gives_a_missing_close_date_ninety_days() -> None:
    mapping = load_mapping()
    records = new_salesforce_records(
        mapping,
        {"name": "Deal", "stage": "New/Pending"},
        referral_id="r-1",
        referral_link="https://pc/r-1",
        today=date(2026, 11, 24),
    )
    assert records["Opportunity"] is not None
    assert records["Opportunity"]["CloseDate"] == "2027-02-22"


def test_a_close_date_from_the_referral_wins_over_the_default() -> None:
    records = new_salesforce_records(
        load_mapping(),
        {"name": "Deal", "stage": "New/Pending", "close_date": "2026-12-31"},
        referral_id="r-1",
        referral_link="https://pc/r-1",
        today=date(2026, 11, 24),
    )
    assert records["Opportunity"] is not None
    assert records["Opportunity"]["CloseDate"] == "2026-12-31"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    default_days_from_today: -1\n", "greater than or equal to 0"),
        ("    default: 2026-12-31\n    default_days_from_today: 5\n", "not both"),
    ],
)
def test_bad_relative_defaults_are_reported(extra: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_mapping(_with_close_date(extra), "mapping.yaml")


def test_a_relative_default_on_a_text_field_is_refused() -> None:
    text = default_mapping_text().replace(
        "    salesforce: Opportunity.Name\n",
        "    salesforce: Opportunity.Name\n    default_days_from_today: 3\n",
        1,
    )
    with pytest.raises(MappingError, match="date fields only"):
        parse_mapping(text, "mapping.yaml")
