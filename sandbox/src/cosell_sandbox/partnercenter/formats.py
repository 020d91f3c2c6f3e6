"""Value formats of the Partner Center Referrals API: code lists and timestamps.

Partner Center validates countries against ISO 3166-1 alpha-2 (`customerProfile.address.country`,
"missing 2-letter country code" is a documented connector error) and currencies against
ISO 4217 (`details.currency`). The lists below are the officially assigned codes (withdrawn
currencies such as HRK, SLL, ZWL and ANG are left out; precious metals, fund and testing codes
such as XAU, XDR and XXX are left out because no deal is priced in them).

Timestamps are UTC ISO 8601 with seven fractional digits and a `Z` suffix, the .NET "round
trip" format the real service emits (`2019-02-23T02:05:23.2931817Z`); Python datetimes have
microseconds, so the seventh digit is always 0.
"""

from __future__ import annotations

from datetime import UTC, datetime

_COUNTRIES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRY_CODES: frozenset[str] = frozenset(_COUNTRIES.split())

_CURRENCIES = """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD
    EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD
    IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL
    MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN
    PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN
    SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES
    VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
CURRENCY_CODES: frozenset[str] = frozenset(_CURRENCIES.split())


def format_timestamp(moment: datetime) -> str:
    """`moment` in the API's format: UTC, seven fractional digits, `Z` (2019-02-23T02:05:23.2931810Z).

    Raises:
        ValueError: `moment` is naive.
    """
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0Z"


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp as the API accepts it (`Z` or an offset; up to 7 digits).

    A timestamp without a zone is taken as UTC, as Partner Center does for its own
    zone-less values (validation event results).

    Raises:
        ValueError: `text` is not an ISO 8601 date-time; the message quotes it.
    """
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    date_part, sep, rest = raw.partition("T")
    if sep and "." in rest:
        # Python accepts at most 6 fractional digits; .NET writes 7. Trim the extra precision.
        head, _, tail = rest.partition(".")
        digits = ""
        for ch in tail:
            if not ch.isdigit():
                break
            digits += ch
        zone = tail[len(digits) :]
        raw = f"{date_part}T{head}.{(digits + '000000')[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
