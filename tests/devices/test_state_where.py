"""DeviceState.where and Device.program_where: re-programming only some cells."""

from __future__ import annotations

import pytest
import torch

from memcim import ConfigError
from memcim.devices import FilamentaryRRAM


def test_where_takes_every_field_from_the_chosen_state(gen):
    dev = FilamentaryRRAM()
    a = dev.program(torch.full((2, 3), 10.0), generator=gen)
    b = dev.program(torch.full((2, 3), 100.0), generator=gen, state=a)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    c = a.where(mask, b)
    for field in ("g_us", "writes", "stuck", "last_pulses"):
        expected = torch.where(mask, getattr(b, field), getattr(a, field))
        assert torch.equal(getattr(c, field), expected), field
    for name in a.params:
        assert torch.equal(c.params[name], torch.where(mask, b.params[name], a.params[name]))


def test_program_where_writes_only_the_selected_cells(gen):
    dev = FilamentaryRRAM()
    state = dev.program(torch.full((4, 5), 20.0), generator=gen)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[1, 2] = mask[3, 0] = True
    new = dev.program_where(torch.full((4, 5), 90.0), mask, state=state, generator=gen)
    assert torch.equal(new.writes, state.writes + mask.long())
    assert torch.equal(new.last_pulses, mask.long())
    assert torch.equal(new.g_us[~mask], state.g_us[~mask])
    # The two re-programmed cells are fresh draws around 90 µS (σ_c2c(90) = 0.6·√90 = 5.7 µS):
    # 6 σ bounds them with probability 1 − 2e-9 each.
    assert ((new.g_us[mask] - 90.0).abs() < 6 * 5.7).all()


def test_program_where_respects_endurance(gen):
    dev = FilamentaryRRAM(endurance_cycles=2)
    state = dev.program(torch.full((3,), 20.0), generator=gen)
    mask = torch.tensor([True, True, False])
    for _ in range(4):
        state = dev.program_where(torch.full((3,), 60.0), mask, state=state, generator=gen)
    assert state.writes.tolist() == [2, 2, 1]
    assert state.stuck.tolist() == [True, True, False]


def test_where_rejects_mismatched_shapes(gen):
    dev = FilamentaryRRAM()
    a = dev.program(torch.full((2, 3), 10.0), generator=gen)
    with pytest.raises(ConfigError, match="one shape"):
        a.where(torch.ones(3, 2, dtype=torch.bool), a)
    with pytest.raises(ConfigError, match="present state"):
        dev.program_where(torch.full((2, 3), 10.0), torch.ones(2, 3, dtype=torch.bool), state=None)


def test_put_programs_a_subset_without_touching_the_rest(gen):
    """Programming the selected cells alone and putting them back gives what program_where
    gives for those cells' fields, and leaves the other cells exactly as they were."""
    dev = FilamentaryRRAM()
    state = dev.program(torch.full((4, 5), 20.0), generator=gen)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[0, 1] = mask[2, 3] = mask[3, 4] = True
    part = dev.program(torch.full((3,), 90.0), generator=gen,
                       state=state.map(lambda t: t[mask]))  # fmt: skip
    new = state.put(mask, part)
    assert torch.equal(new.writes, state.writes + mask.long())
    assert torch.equal(new.last_pulses, mask.long())
    assert torch.equal(new.g_us[~mask], state.g_us[~mask])
    assert torch.equal(new.g_us[mask], part.g_us)
    for name in state.params:
        assert torch.equal(new.params[name][~mask], state.params[name][~mask])
    assert ((new.g_us[mask] - 90.0).abs() < 6 * 5.7).all()  # as program_where's test
    with pytest.raises(ConfigError, match="DeviceState.put"):
        state.put(mask, state)
