"""A plan or a send freezes the long-lived heap and shortens thread switches while it runs, and puts both
back when it ends, even when nested or failing (digest.delivery.interpreter)."""

from __future__ import annotations

import gc
import sys

import pytest

from digest.delivery.interpreter import SWITCH_INTERVAL_SECONDS, bulk_work


def test_bulk_work_freezes_the_heap_and_shortens_switches_until_the_outer_one_ends():
    switch, frozen = sys.getswitchinterval(), gc.get_freeze_count()
    with bulk_work():
        assert gc.get_freeze_count() > frozen
        assert sys.getswitchinterval() == pytest.approx(min(switch, SWITCH_INTERVAL_SECONDS))
        with bulk_work():
            pass
        assert gc.get_freeze_count() > frozen  # the inner one put nothing back
    assert (sys.getswitchinterval(), gc.get_freeze_count()) == (switch, 0)


def test_bulk_work_puts_things_back_when_the_work_fails():
    switch = sys.getswitchinterval()
    with pytest.raises(RuntimeError), bulk_work():
        raise RuntimeError("the send failed")
    assert (sys.getswitchinterval(), gc.get_freeze_count()) == (switch, 0)
