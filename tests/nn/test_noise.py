"""ConductanceNoiseTable against the published PCM model (Nandakumar et al. 2019, REFERENCES.md).

The expected moments are written out here from the published formulas, independently of the
device's helper methods. The table estimates each grid point from ``draws`` = 4096 Monte-Carlo
draws, so its standard errors are, for a distribution of std σ: σ/√4096 for the mean shift and
σ/√(2·4096) ≈ 1.1 % of σ for the std (normal theory). Tolerances are 5 standard errors (false
alarm ~6e-7 per check; the seeds are fixed anyway) unless stated otherwise.
"""

import math

import pytest
import torch

from memcim import ConfigError
from memcim._compile import compiler_available
from memcim.crossbar import MappingConfig
from memcim.devices import PCM, IdealDevice
from memcim.nn import ConductanceNoiseTable, noise
from memcim.nn.noise import WeightNoiseTable

DRAWS = 4096
G_MAX, T0, T_READ = 25.0, 20.0, 250e-9

# Normal quadrature nodes for expectations over z ~ N(0, 1), in float64.
Z = torch.linspace(-8.0, 8.0, 2001, dtype=torch.float64)
PDF = torch.exp(-0.5 * Z**2) / math.sqrt(2 * math.pi)


def expect(values: torch.Tensor) -> float:
    return torch.trapezoid(values * PDF, Z).item()


def sigma_prog(g_us: float) -> float:
    g = min(max(g_us / G_MAX, 0.0), 1.0)
    return max(-1.1731 * g**2 + 1.9650 * g + 0.2635, 0.0)


def q_s(g_us: float) -> float:
    g = max(min(g_us / G_MAX, 1.0), 1e-3)
    return min(0.0088 / g**0.65, 0.2)


def read_time_factor(t_s: float) -> float:
    """sqrt(ln((t + t0 + t_read) / (2 t_read))): σ_read / (g(t) Q_s)."""
    return math.sqrt(math.log((t_s + T0 + T_READ) / (2 * T_READ)))


def nu_stats(g_us: float) -> tuple[float, float]:
    log_g = math.log(max(g_us / G_MAX, 1e-3))
    mu = min(max(-0.0155 * log_g + 0.0244, 0.049), 0.1)
    sigma = min(max(-0.0125 * log_g - 0.0059, 0.008), 0.045)
    return mu, sigma


def drift_moments(g_us: float, t_s: float) -> tuple[float, float]:
    """E[d] and E[d²] of the drift factor d = ((t + t0)/t0)^(−ν), ν ~ |N(μ_ν, σ_ν)|."""
    mu, sigma = nu_stats(g_us)
    nu = (mu + sigma * Z).abs()
    log_r = math.log((t_s + T0) / T0)
    return expect(torch.exp(-nu * log_r)), expect(torch.exp(-2 * nu * log_r))


@pytest.fixture(scope="module")
def table_t0() -> ConductanceNoiseTable:
    return ConductanceNoiseTable(PCM(), 0.0, generator=torch.Generator().manual_seed(5))


def test_table_at_t0_is_programming_and_read_noise_in_quadrature(table_t0):
    """std(read(program(g), 0) − g) = sqrt(σ_prog(ĝ)² + σ_read(ĝ, t=0)²), mean shift 0.

    Only grid points with g >= 2.5 µS are compared: there the clip at 0 µS is > 5 σ_prog away,
    and Q_s taken at the programmed rather than the target conductance changes σ_read² by
    < 0.5 % (second-order in σ_prog/g), far below the 1.1 % standard error.
    """
    grid = table_t0.g_grid_us
    assert grid.shape == (65,)
    torch.testing.assert_close(grid, torch.linspace(0.0, 25.0, 65))
    checked = 0
    for g, shift, std in zip(
        grid.tolist(), table_t0.mean_shift_us.tolist(), table_t0.std_us.tolist(), strict=True
    ):
        if g < 2.5:
            continue
        expected = math.hypot(sigma_prog(g), g * q_s(g) * read_time_factor(0.0))
        assert abs(std - expected) < 5 * expected / math.sqrt(2 * DRAWS), (g, std, expected)
        assert abs(shift) < 5 * expected / math.sqrt(DRAWS), (g, shift)
        checked += 1
    assert checked == 58


def test_table_at_zero_conductance_has_the_rectified_programming_mean(table_t0):
    """At g = 0 the programmed value is max(N(0, σ_prog(0)²), 0): its mean shift is
    σ_prog(0)/√(2π) (read noise is zero-mean), 0.105 µS for σ_prog(0) = 0.2635 µS."""
    expected = sigma_prog(0.0) / math.sqrt(2 * math.pi)
    std = table_t0.std_us[0].item()
    assert abs(table_t0.mean_shift_us[0].item() - expected) < 5 * std / math.sqrt(DRAWS)


def test_table_at_one_day_has_the_published_drift_and_read_noise():
    """With drift: read = g_p·d + σ_read·n, g_p ~ N(g, σ_prog²), d = r^(−ν), r = (t + t0)/t0.

    Mean shift g(E[d] − 1); variance (g² + σ_prog²) E[d²] − g² E[d]² + E[d²] (g Q_s S(t))²
    (σ_read evaluated at the target, as in the t = 0 test). E[d], E[d²] by quadrature over the
    folded normal ν. The drifted distribution is slightly skewed (log-normal-like, relative
    spread <= 20 % at ĝ = 0.1), which raises the SE of a sample std by <= 15 %: 6 SE.
    """
    t = 86_400.0
    table = ConductanceNoiseTable(PCM(), t, generator=torch.Generator().manual_seed(6))
    for g, shift, std in zip(
        table.g_grid_us.tolist(), table.mean_shift_us.tolist(), table.std_us.tolist(), strict=True
    ):
        if g < 2.5:
            continue
        d1, d2 = drift_moments(g, t)
        sp, sr = sigma_prog(g), g * q_s(g) * read_time_factor(t)
        expected_std = math.sqrt((g**2 + sp**2) * d2 - g**2 * d1**2 + d2 * sr**2)
        assert abs(shift - g * (d1 - 1)) < 5 * expected_std / math.sqrt(DRAWS), (g, shift)
        assert abs(std - expected_std) < 6 * expected_std / math.sqrt(2 * DRAWS), (g, std)


def test_moments_interpolate_linearly_and_hold_outside_the_window(table_t0):
    grid, shift, std = table_t0.g_grid_us, table_t0.mean_shift_us, table_t0.std_us
    mid = (grid[:-1] + grid[1:]) / 2
    m, s = table_t0.moments(mid)
    torch.testing.assert_close(m, (shift[:-1] + shift[1:]) / 2)
    torch.testing.assert_close(s, (std[:-1] + std[1:]) / 2)
    at_quarter = grid[10] + 0.25 * (grid[11] - grid[10])
    m, s = table_t0.moments(at_quarter.reshape(1))
    torch.testing.assert_close(s, (0.75 * std[10] + 0.25 * std[11]).reshape(1))
    m, s = table_t0.moments(grid)
    torch.testing.assert_close(s, std)
    torch.testing.assert_close(m, shift)
    m, s = table_t0.moments(torch.tensor([-3.0, 40.0]))
    torch.testing.assert_close(s, torch.stack([std[0], std[-1]]))
    torch.testing.assert_close(m, torch.stack([shift[0], shift[-1]]))


def test_sample_is_gaussian_with_the_table_moments(table_t0, gen):
    """Mean within 5 σ/√n and std within 5 σ/√(2n) of the interpolated moments (n = 40 000);
    the fraction beyond 2 σ within 5 SE of the Gaussian 4.55 % (binomial SE)."""
    n = 40_000
    targets = torch.tensor([0.0, 7.3, 18.0])
    g = table_t0.sample(targets.expand(n, 3), generator=gen).double()
    mean, std = table_t0.moments(targets)
    dev = g - targets.double()
    assert ((dev.mean(0) - mean).abs() < 5 * std / math.sqrt(n)).all()
    assert ((dev.std(0) - std).abs() < 5 * std / math.sqrt(2 * n)).all()
    tail = ((dev - mean).abs() > 2 * std).double().mean(0)
    p = math.erfc(2 / math.sqrt(2))
    assert ((tail - p).abs() < 5 * math.sqrt(p * (1 - p) / n)).all()


def test_same_seed_gives_the_same_table_and_draws():
    def build():
        gen = torch.Generator().manual_seed(9)
        table = ConductanceNoiseTable(PCM(), 0.0, points=9, draws=256, generator=gen)
        return table, table.sample(torch.full((5,), 12.0), generator=gen)

    (a, sa), (b, sb) = build(), build()
    assert torch.equal(a.std_us, b.std_us) and torch.equal(a.mean_shift_us, b.mean_shift_us)
    assert torch.equal(sa, sb)


def test_ideal_device_table_is_noiseless():
    table = ConductanceNoiseTable(IdealDevice(), 0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(table.std_us, torch.zeros(65))
    assert torch.equal(table.mean_shift_us, torch.zeros(65))
    targets = torch.tensor([0.0, 3.3, 25.0])
    assert torch.equal(table.sample(targets, generator=torch.Generator()), targets)


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="points"):
        ConductanceNoiseTable(PCM(), points=1)
    with pytest.raises(ConfigError, match="draws"):
        ConductanceNoiseTable(PCM(), draws=1)
    with pytest.raises(ConfigError, match="t_s"):
        ConductanceNoiseTable(PCM(), -1.0)


# --- WeightNoiseTable: the same noise folded into weight units ------------------------------------


@pytest.mark.parametrize("devices_per_weight", [1, 2])
def test_weight_table_has_the_moments_of_the_differential_pair(table_t0, devices_per_weight):
    """At its grid points w̃ = k/128 the weight table holds, for G⁺ = g_min + span·max(w̃, 0) and
    G⁻ = g_min + span·max(−w̃, 0) repeated N times on the bit line: mean shift
    N (m(G⁺) − m(G⁻)) / (N span) and std sqrt(N (s(G⁺)² + s(G⁻)²)) / (N span) — the pair's two
    moments from the conductance table (exact, up to float rounding)."""
    mapping = MappingConfig(devices_per_weight=devices_per_weight)
    wt = WeightNoiseTable(table_t0, mapping)
    w = wt.w_grid
    assert w.shape == (257,) and w[128] == 0.0
    pos, neg = G_MAX * w.clamp_min(0.0), G_MAX * (-w).clamp_min(0.0)
    (m_pos, s_pos), (m_neg, s_neg) = table_t0.moments(pos), table_t0.moments(neg)
    n = devices_per_weight
    torch.testing.assert_close(wt.mean_shift, (m_pos - m_neg) / G_MAX, rtol=1e-5, atol=1e-7)
    expected_std = (s_pos.square() + s_neg.square()).sqrt() / (math.sqrt(n) * G_MAX)
    torch.testing.assert_close(wt.std, expected_std, rtol=1e-5, atol=1e-7)


def test_weight_table_samples_scale_with_w_max(table_t0, gen):
    """sample(w, w_max) = w + w_max·(mean(w/w_max) + std(w/w_max)·z): with w_max = 2 the
    deviations are twice those of w/2 at w_max = 1. Mean within 5 σ/√n, std within 5 σ/√(2n)
    of the table's (linearly interpolated) moments, n = 40 000."""
    wt = WeightNoiseTable(table_t0, MappingConfig())
    n = 40_000
    w_norm = torch.tensor([1.0, -0.6, 0.3, 0.0, -1 / 256])  # also between grid points
    w_max = 2.0
    noisy = wt.sample((w_max * w_norm).expand(n, 5), torch.tensor(w_max), generator=gen).double()
    dev = noisy / w_max - w_norm.double()
    mean = interp(w_norm, wt.w_grid, wt.mean_shift)
    std = interp(w_norm, wt.w_grid, wt.std)
    assert ((dev.mean(0) - mean).abs() < 5 * std / math.sqrt(n)).all()
    assert ((dev.std(0) - std).abs() < 5 * std / math.sqrt(2 * n)).all()


def interp(x: torch.Tensor, grid: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of values(grid) at x (inside the grid), in float64."""
    hi = torch.searchsorted(grid, x, right=True).clamp(1, len(grid) - 1)
    x0, x1 = grid[hi - 1].double(), grid[hi].double()
    v0, v1 = values[hi - 1].double(), values[hi].double()
    return v0 + (v1 - v0) * (x.double() - x0) / (x1 - x0)


def test_weight_table_sample_is_the_interpolated_formula_with_the_same_normals(table_t0):
    """The eager sample (scaled tables, truncated indices, scratch buffers) is the formula
    w + w_max·(mean(w̃) + std(w̃)·z) evaluated in float64 with the same normals z, within
    1e-6 of w_max (the noise is ~1e-2 of w_max): at the grid ends ±w_max, at grid points and
    between them, written into a block of a larger tensor as into a new one."""
    wt = WeightNoiseTable(table_t0, MappingConfig())
    w = torch.randn(24, 40, generator=torch.Generator().manual_seed(0)) * 0.1
    w_max = w.abs().amax()
    assert 0.2 < w_max < 0.5  # not 1: the scale must matter
    w[0, :4] = w_max * torch.tensor([1.0, -1.0, 0.0, 0.5])  # the grid's ends, two grid points
    z = torch.randn(w.shape, generator=torch.Generator().manual_seed(5)).double()
    w_norm = (w / w_max).clamp(-1, 1)
    expected = w.double() + w_max.double() * (
        interp(w_norm, wt.w_grid, wt.mean_shift) + interp(w_norm, wt.w_grid, wt.std) * z
    )
    fresh = wt.sample(w, w_max, generator=torch.Generator().manual_seed(5))
    whole = torch.zeros(30, 50)
    block = wt.sample(w, w_max, generator=torch.Generator().manual_seed(5),
                      out=whole[3:27, 5:45])  # fmt: skip
    for got in (fresh, block, whole[3:27, 5:45]):
        torch.testing.assert_close(got.double(), expected, rtol=0, atol=1e-6 * float(w_max))
    assert whole[:3].abs().sum() == 0 and whole[:, :5].abs().sum() == 0  # only the block


@pytest.mark.parametrize(
    ("mapping", "points", "match"),
    [
        (MappingConfig(scheme="offset"), 257, "mapping"),
        (MappingConfig(weight_bits=4), 257, "mapping"),
        (MappingConfig(), 256, "points"),
        (MappingConfig(), 1, "points"),
    ],
)
def test_weight_table_rejects_what_it_cannot_represent(table_t0, mapping, points, match):
    with pytest.raises(ConfigError, match=match):
        WeightNoiseTable(table_t0, mapping, points=points)


# --- the compiled training noise (CIMConfig.compile) -------------------------------------------

NEEDS_COMPILER = pytest.mark.skipif(
    not compiler_available(),
    reason="torch.compile on CPU needs a C++ compiler",
)


@NEEDS_COMPILER
def test_the_compiled_noise_is_the_eager_noise(table_t0):
    """The same generator state gives the same noisy weights through torch.compile as eagerly:
    the random numbers are drawn eagerly either way, and the interpolation may differ in the
    last float32 digits only (tolerance 1e-6 relative to w_max; the noise itself is ~1e-2 of
    w_max, so a different draw or a skipped table would miss by 100x that)."""
    wt = WeightNoiseTable(table_t0, MappingConfig())
    w = torch.randn(24, 40, generator=torch.Generator().manual_seed(0)) * 0.1
    w_max = w.abs().amax()
    eager = wt.sample(w, w_max, generator=torch.Generator().manual_seed(5))
    fast = wt.sample(w, w_max, generator=torch.Generator().manual_seed(5), compiled=True)
    torch.testing.assert_close(fast, eager, rtol=0, atol=1e-6 * float(w_max))
    assert not torch.equal(eager, w)  # there is noise to compare


def test_a_failed_compile_names_the_compiler(table_t0, monkeypatch):
    def broken(fn, **options):
        def run(*args):
            raise RuntimeError("no C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    noise._compiled_noisy_weights.cache_clear()  # build it with the broken compiler
    try:
        wt = WeightNoiseTable(table_t0, MappingConfig())
        with pytest.raises(ConfigError, match=r"C\+\+ compiler.*CIMConfig.compile=False"):
            wt.sample(torch.ones(3, 4) * 0.1, torch.tensor(0.1), generator=None, compiled=True)
    finally:
        noise._compiled_noisy_weights.cache_clear()  # later tests compile for real


def test_weights_with_nan_or_inf_are_named(table_t0):
    wt = WeightNoiseTable(table_t0, MappingConfig())
    for bad in (math.nan, math.inf):
        w = torch.tensor([0.1, bad])
        with pytest.raises(ConfigError, match="w contains NaN or infinite values"):
            wt.sample(w, torch.tensor(0.1), generator=None)
        with pytest.raises(ConfigError, match="w contains NaN or infinite values"):
            wt.sample_and_drift_means(w, torch.tensor(0.1), generator=None)
