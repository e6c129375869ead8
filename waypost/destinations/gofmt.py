"""Numbers printed the way Outpost's Go code prints them, so keys built from event data match.

Outpost decodes JSON numbers into float64 and formats template results with `%g`/`%v`; the
Kinesis partition key, the S3 object key and the Kafka message key all go through this.
"""

from __future__ import annotations

from decimal import Decimal


def go_g(number: float) -> str:
    """Go's `%g` of a float64: the shortest digits that read back the same, in exponent form
    when the decimal exponent is below -4 or at least 6 (`1.2345678e+07`, `1e-05`, `123456`)."""
    if number != number or number in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(number)]
    if number == 0:
        return "-0" if str(number).startswith("-") else "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    decimal_exponent = len(text) + exponent - 1
    prefix = "-" if sign else ""
    if decimal_exponent < -4 or decimal_exponent >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        sign_char = "-" if decimal_exponent < 0 else "+"
        return f"{prefix}{mantissa}e{sign_char}{abs(decimal_exponent):02d}"
    if exponent >= 0:
        return prefix + text + "0" * exponent
    point = len(text) + exponent
    if point > 0:
        return f"{prefix}{text[:point]}.{text[point:]}"
    return f"{prefix}0.{'0' * -point}{text}"
