import math

import numpy as np
import pytest

from hf_lilaw.core.settings import check_flag, is_finite_number


@pytest.mark.parametrize("value", [0, 3, 0.5, -2.0, np.float64(0.1)])
def test_finite_numbers_pass(value):
    assert is_finite_number(value)


@pytest.mark.parametrize("value", [True, False, None, "0.5", math.nan, math.inf, -math.inf, [1.0]])
def test_bools_strings_and_non_finite_values_are_not_numbers(value):
    assert not is_finite_number(value)


def test_a_quoted_false_is_refused_with_the_fix():
    check_flag(False, name="x")
    check_flag(None, name="x", allowed=(None, True, False), text="True, False or None")
    with pytest.raises(ValueError) as refused:
        check_flag("false", name="x")
    assert str(refused.value) == "x must be True or False, got 'false'; in a JSON or YAML file write true or false without quotes."
    with pytest.raises(ValueError, match="x must be True, False or None, got 'no'"):
        check_flag("no", name="x", allowed=(None, True, False), text="True, False or None")
