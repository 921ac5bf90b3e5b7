"""Small statistics helpers, used as the sample file for `scripts/try.sh`."""

import math


def mean(values):
    return sum(values) / len(values)


def variance(values):
    m = mean(values)
    return sum((v - m) ** 2 for v in values) / len(values)


def stdev(values):
    return math.sqrt(variance(values))
