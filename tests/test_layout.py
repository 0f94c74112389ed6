"""Part layout arithmetic: S3's limits and the last part."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3mpu.errors import UsageError
from s3mpu.layout import MAX_PARTS, MIN_PART_SIZE, auto_part_size, part_count, plan_parts
from s3mpu.units import GiB, MiB, TiB


def test_auto_part_size_minimum_and_limit() -> None:
    assert auto_part_size(1) == 8 * MiB
    assert auto_part_size(80 * GiB) == 9 * MiB  # 8 MiB would need 10,240 parts
    assert part_count(5 * TiB, auto_part_size(5 * TiB)) <= MAX_PARTS


@given(st.integers(min_value=0, max_value=5 * TiB))
def test_auto_layout_always_valid(size: int) -> None:
    ps = auto_part_size(size)
    assert ps >= 8 * MiB and ps % MiB == 0
    assert part_count(size, ps) <= MAX_PARTS


@given(st.integers(min_value=0, max_value=10 * GiB), st.integers(min_value=MIN_PART_SIZE, max_value=GiB))
def test_plan_covers_the_file_exactly(size: int, part_size: int) -> None:
    if part_count(size, part_size) > MAX_PARTS:
        return
    spans = plan_parts(size, part_size)
    assert [s.number for s in spans] == list(range(1, len(spans) + 1))
    assert sum(s.size for s in spans) == size
    assert all(s.offset == (s.number - 1) * part_size for s in spans)
    assert all(s.size == part_size for s in spans[:-1]) and 0 <= spans[-1].size <= part_size


def test_boundaries() -> None:
    ps = 5 * MiB
    assert [s.size for s in plan_parts(ps, ps)] == [ps]
    assert [s.size for s in plan_parts(ps + 1, ps)] == [ps, 1]
    assert [s.size for s in plan_parts(0, ps)] == [0]  # an empty object is one empty part


def test_refusals() -> None:
    with pytest.raises(UsageError, match="below S3's 5 MiB"):
        plan_parts(10 * MiB, 1 * MiB)
    assert len(plan_parts(100, 1 * MiB)) == 1  # single part may be small
    with pytest.raises(UsageError, match="10,000"):
        plan_parts(100 * GiB, 5 * MiB)
    with pytest.raises(UsageError, match="5 GiB"):
        plan_parts(10 * GiB, 6 * GiB)
    with pytest.raises(UsageError, match="5 TiB"):
        plan_parts(6 * TiB, 1 * GiB)
