"""Non-Gaussian read noise on tiles: exact cell-by-cell reads against the moment-matched
Gaussian, with Lin et al.'s Laplace devices on a fixed-reference offset mapping."""

import pytest
import torch

from memcim import ConfigError
from memcim.crossbar import ConverterConfig, MappingConfig, Tile, TileConfig
from memcim.devices import LaplaceRRAM, TwoDFET

IDEAL = ConverterConfig(bits=None)
LIN = MappingConfig(scheme="offset", devices_per_weight=3, reference="fixed",
                    reference_us=LaplaceRRAM().reference_us)  # fmt: skip


def reads(mode: str, x: torch.Tensor, gen) -> torch.Tensor:
    config = TileConfig(device=LaplaceRRAM(), mapping=LIN, dac=IDEAL, adc=IDEAL,
                        non_gaussian_read=mode, drift_compensation=False)  # fmt: skip
    tile = Tile(6, 4, config)
    tile.program(torch.linspace(-0.4, 0.4, 24).reshape(4, 6), generator=gen)
    return tile.mvm(x, generator=gen)


@pytest.mark.parametrize("active", [1, 6])
def test_moment_matched_reads_have_the_exact_mean_and_variance(active, gen, one_thread):
    """20 000 reads of the same vector: per column the two modes' means agree within 5 SE and
    their variances within 5 SE of a variance (SE ≈ σ²·√((κ − 1)/n), κ <= 4 for Laplace
    sums). One driven row (three Laplace cells per column, excess kurtosis 1): the exact reads
    are heavy-tailed, the moment-matched ones Gaussian (kurtosis 3 ± 0.03)."""
    n = 20_000
    x = torch.zeros(n, 6)
    x[:, :active] = 1.0
    exact, matched = reads("per_cell", x, gen), reads("moment_matched", x, gen)
    var = exact.var(0)
    assert ((exact.mean(0) - matched.mean(0)).abs() < 5 * (2 * var / n).sqrt()).all()
    assert ((exact.var(0) / matched.var(0) - 1).abs() < 5 * (3 / n) ** 0.5).all()

    def kurtosis(y):
        z = (y - y.mean(0)) / y.std(0)
        return z.pow(4).mean(0)

    if active == 1:
        assert (kurtosis(exact) > 3.5).all() and ((kurtosis(matched) - 3).abs() < 0.15).all()


def test_moment_matching_needs_zero_mean_read_noise():
    with pytest.raises(ConfigError, match="non_gaussian_read"):
        TileConfig(device=TwoDFET(), non_gaussian_read="moment_matched")
    with pytest.raises(ConfigError, match="non_gaussian_read"):
        TileConfig(non_gaussian_read="gaussian")


def test_a_fixed_reference_is_not_written_and_a_cell_reference_is(gen):
    fixed = Tile(6, 4, TileConfig(device=LaplaceRRAM(), mapping=LIN))
    cell_ref = MappingConfig(scheme="offset", devices_per_weight=3,
                             reference_us=LaplaceRRAM().reference_us)  # fmt: skip
    cells = Tile(6, 4, TileConfig(device=LaplaceRRAM(), mapping=cell_ref))
    w = torch.linspace(-0.4, 0.4, 24).reshape(4, 6)
    fixed.program(w, generator=gen)
    cells.program(w, generator=gen)
    assert fixed.counters.cell_writes == 3 * 24 and fixed.cells == 3 * 24
    assert cells.counters.cell_writes == 3 * 24 + 3 * 6 and cells.cells == 3 * 24 + 3 * 6
    torch.testing.assert_close(fixed.read_weights(), w, rtol=1e-5, atol=1e-6)


def test_cell_by_cell_reads_of_a_plain_batch_on_monte_carlo_copies(gen, one_thread):
    """A [B, rows] batch on a tile holding K copies reads every copy (exact per-cell path)."""
    config = TileConfig(device=LaplaceRRAM(), mapping=LIN, dac=IDEAL, adc=IDEAL,
                        drift_compensation=False)  # fmt: skip
    tile = Tile(6, 4, config)
    w = torch.linspace(-0.4, 0.4, 24).reshape(4, 6)
    tile.program(w, generator=gen, samples=3)
    y = tile.mvm(torch.eye(6).expand(200, -1, -1).reshape(-1, 6), generator=gen)
    assert y.shape == (3, 1200, 4) and tile.counters.mvms == 3 * 1200
    # Reads of each weight (one-hot rows) average to it: Laplace noise of b <= 0.035 µA per
    # device, σ_w = √6·b/(k·v) <= 0.05 here; 5 SE over 200 reads is < 0.02.
    mean = y.reshape(3, 200, 6, 4).mean(1)
    torch.testing.assert_close(mean, w.T.expand(3, -1, -1), atol=0.02, rtol=0)
