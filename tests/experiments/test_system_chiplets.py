"""The system-chiplets experiment: config validation and a default run (about a second)."""

import json
from pathlib import Path

import pytest

from memcim import ConfigError
from memcim.energy.system import DEVICES_PER_PARAMETER
from memcim.experiments import registry
from memcim.experiments.runner import run_experiment
from memcim.experiments.system_chiplets import BUILDS, SystemChipletsConfig, run


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bayes_e_pj", -1.0),
        ("bayes_latency_s", 0.0),
        ("monolithic_link_mm", -1.0),
        ("area_mm2", 0.0),
        ("device", "flash"),
        ("feature_nm", 0.0),
        ("layers", ()),
        ("layers", (0, 2)),
        ("array_efficiency", 1.2),
        ("population", 0),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        SystemChipletsConfig(**{field: value})


def test_registered():
    assert registry.get("system-chiplets").config_type is SystemChipletsConfig


def test_default_run_is_consistent(tmp_path: Path):
    config = SystemChipletsConfig()
    m = run(config, seed=0, out_dir=tmp_path).metrics
    for label in BUILDS.values():
        for key in (f"energy_{label}_pj", f"link_energy_{label}_pj", f"link_share_{label}",
                    f"latency_{label}_s", f"throughput_{label}_per_s"):  # fmt: skip
            assert key in m and m[key] > 0, key
        # energy = the chiplets' part (the same for every build) + the links'.
        assert m[f"energy_{label}_pj"] == pytest.approx(
            m["stage_energy_pj"] + m[f"link_energy_{label}_pj"]
        )
        assert m[f"link_share_{label}"] == pytest.approx(
            m[f"link_energy_{label}_pj"] / m[f"energy_{label}_pj"]
        )
    assert m["energy_3d_pj"] < m["energy_2_5d_pj"] < m["energy_2d_pj"]
    assert m["link_share_3d"] < m["link_share_2_5d"] < m["link_share_2d"]
    assert m["latency_3d_s"] < m["latency_2_5d_s"] < m["latency_2d_s"]
    # 8,000 bits per inference; 3D 0.05 pJ/bit, 2D 7.5 pJ/bit.
    assert m["link_energy_3d_pj"] == pytest.approx(400.0)
    assert m["link_energy_2d_pj"] == pytest.approx(60_000.0)

    for scheme, dpp in DEVICES_PER_PARAMETER.items():
        one = m[f"largest_model_params_{scheme}_1l"]
        assert one > 0 and one == int(one)
        for n in config.layers:
            assert m[f"largest_model_params_{scheme}_{n}l"] == n * one  # exactly proportional
            assert m[f"largest_model_params_{scheme}_{n}l"] * dpp <= (
                m[f"density_devices_per_mm2_{n}l"] * config.area_mm2
            )
    params_8l = [m[f"largest_model_params_{s}_8l"] for s in DEVICES_PER_PARAMETER]
    assert params_8l == sorted(params_8l, reverse=True)  # more devices per parameter, fewer
    for name in ("energy_breakdown.png", "largest_model_vs_layers.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_overrides_through_the_runner(tmp_path: Path):
    assignments = {"layers": "1,3", "bayes_e_pj": "0", "population": "10"}
    record = run_experiment("system-chiplets", tmp_path, assignments=assignments)
    m = record["metrics"]
    assert "largest_model_params_device_population_3l" in m
    assert "largest_model_params_device_population_8l" not in m
    assert (
        m["largest_model_params_cycle_to_cycle_3l"]
        == 3 * m["largest_model_params_cycle_to_cycle_1l"]
    )
    # population 10: 20 devices per parameter instead of 2 for differential: 10× fewer (within
    # the flooring of one parameter per layer).
    diff, pop = (m[f"largest_model_params_{s}_1l"] for s in ("differential", "device_population"))
    assert pop == pytest.approx(diff / 10, abs=1)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary_table"]["header"][0] == "integration"
    assert len(saved["summary_table"]["rows"]) == len(BUILDS)
    assert saved["costs"]["3d"]["energy_pj"] == pytest.approx(m["energy_3d_pj"])
