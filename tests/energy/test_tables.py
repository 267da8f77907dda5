"""Cited operation energies, ADC energy, links and cell areas: values checked by hand."""

import dataclasses
import math

import pytest

from memcim import ConfigError
from memcim.energy.tables import (
    CELL_AREA_F2,
    DDR,
    HBM,
    HOROWITZ_45NM,
    HYBRID_BONDING_3D,
    INTERPOSER_2_5D,
    LINKS,
    OFF_PACKAGE,
    ON_DIE,
    Link,
    OperationEnergies,
    adc_energy_pj,
)


def test_horowitz_values_are_the_cited_table():
    # Horowitz, ISSCC 2014, 45 nm (REFERENCES.md "Energy").
    h = HOROWITZ_45NM
    assert (h.int8_add_pj, h.int8_mult_pj) == (0.03, 0.2)
    assert (h.int32_add_pj, h.int32_mult_pj) == (0.1, 3.1)
    assert (h.fp32_add_pj, h.fp32_mult_pj) == (0.9, 3.7)
    assert h.sram_read_32b_pj == 5.0
    assert h.dram_read_32b_pj == 640.0
    # The famous ratio: a DRAM read costs 640 / 3.7 = 172.97 fp32 multiplies.
    assert h.dram_read_32b_pj / h.fp32_mult_pj == pytest.approx(172.97, abs=0.01)
    # Per bit: 5 / 32 = 0.15625 pJ (SRAM), 640 / 32 = 20 pJ (DRAM).
    assert h.sram_bit_pj == pytest.approx(0.15625)
    assert h.dram_bit_pj == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        ("int8", 0.23),  # 0.2 + 0.03
        ("int32", 3.2),  # 3.1 + 0.1
        ("fp32", 4.6),  # 3.7 + 0.9
    ],
)
def test_mac_is_one_multiply_plus_one_add(dtype, expected):
    assert HOROWITZ_45NM.mac_pj(dtype) == pytest.approx(expected)


def test_scaled_scales_logic_and_sram_but_not_dram():
    s = HOROWITZ_45NM.scaled(0.5)
    assert s.fp32_mult_pj == pytest.approx(1.85)  # 3.7 × 0.5
    assert s.int8_add_pj == pytest.approx(0.015)  # 0.03 × 0.5
    assert s.sram_read_32b_pj == pytest.approx(2.5)  # 5 × 0.5
    assert s.mac_pj("int8") == pytest.approx(0.115)  # (0.2 + 0.03) × 0.5
    assert s.dram_read_32b_pj == 640.0  # kept: DRAM energy is mostly I/O
    with pytest.raises(ConfigError, match="factor"):
        HOROWITZ_45NM.scaled(0.0)


def test_replace_keeps_the_other_fields():
    t = dataclasses.replace(HOROWITZ_45NM, dram_read_32b_pj=320.0)
    assert t.dram_bit_pj == pytest.approx(10.0)  # 320 / 32
    assert t.fp32_mult_pj == 3.7


@pytest.mark.parametrize(
    ("bits", "fom", "expected"),
    [
        (8, 10.0, 2.56),  # 10 fJ × 2^8 = 2560 fJ = 2.56 pJ
        (1, 10.0, 0.02),  # 10 fJ × 2 = 20 fJ
        (4, 1.0, 0.016),  # 1 fJ × 16
        (10, 5.0, 5.12),  # 5 fJ × 1024 = 5120 fJ
        (6, 0.0, 0.0),
    ],
)
def test_adc_energy_is_fom_times_two_to_the_bits(bits, fom, expected):
    assert adc_energy_pj(bits, fom) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("bits", "fom", "field"),
    [(0, 10.0, "bits"), (8.0, 10.0, "bits"), (8, -1.0, "fom_fj_per_step")],
)
def test_adc_energy_rejects_bad_arguments(bits, fom, field):
    with pytest.raises(ConfigError, match=field):
        adc_energy_pj(bits, fom)


def test_link_energy_and_latency():
    link = Link(name="t", e_pj_per_bit=0.5, latency_s=10e-9, bandwidth_bits_per_s=1e9)
    assert link.energy_pj(1000) == pytest.approx(500.0)  # 1000 bit × 0.5 pJ/bit
    # Not per mm: the length does not matter.
    assert link.energy_pj(1000, length_mm=7.0) == pytest.approx(500.0)
    # 10 ns + 1000 bit / 1 Gbit/s = 10 ns + 1 µs = 1.01 µs
    assert link.latency_for_s(1000) == pytest.approx(1.01e-6)
    assert link.latency_for_s(0) == pytest.approx(10e-9)


def test_on_die_link_scales_with_length():
    assert ON_DIE.per_mm
    # 100 bit × 0.1 pJ/bit/mm × 3 mm = 30 pJ
    assert ON_DIE.energy_pj(100, length_mm=3.0) == pytest.approx(30.0)
    assert ON_DIE.energy_pj(100) == pytest.approx(10.0)  # default 1 mm
    assert ON_DIE.energy_pj(100, length_mm=0.0) == 0.0
    # 1 ns + 1000 bit / 1 Tbit/s = 1 ns + 1 ns = 2 ns
    assert ON_DIE.latency_for_s(1000) == pytest.approx(2e-9)


def test_link_presets_are_the_cited_per_bit_energies():
    # REFERENCES.md "Energy": order-of-magnitude figures (midpoints of the ranges).
    assert INTERPOSER_2_5D.e_pj_per_bit == 0.5
    assert HYBRID_BONDING_3D.e_pj_per_bit == 0.05
    assert OFF_PACKAGE.e_pj_per_bit == 7.5  # midpoint of 5–10
    assert HBM.e_pj_per_bit == 4.0
    assert DDR.e_pj_per_bit == 17.5  # midpoint of 15–20
    assert not any(link.per_mm for link in (INTERPOSER_2_5D, HYBRID_BONDING_3D, OFF_PACKAGE))
    assert set(LINKS.values()) == {ON_DIE, INTERPOSER_2_5D, HYBRID_BONDING_3D, OFF_PACKAGE,
                                   HBM, DDR}  # fmt: skip
    # 1 kbit over DDR: 1000 × 17.5 = 17.5 nJ; 100 ns + 1000 / 2e11 s = 100 ns + 5 ns
    assert DDR.energy_pj(1000) == pytest.approx(17500.0)
    assert DDR.latency_for_s(1000) == pytest.approx(105e-9)


def test_cell_areas():
    assert CELL_AREA_F2["SRAMCell"] == 150.0
    assert CELL_AREA_F2["IdealDevice"] == 4.0
    assert CELL_AREA_F2["PCM"] == 30.0
    assert all(v > 0 for v in CELL_AREA_F2.values())


@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf])
def test_operation_energies_reject_negative_or_non_finite(value):
    with pytest.raises(ConfigError, match=r"OperationEnergies\.fp32_add_pj"):
        OperationEnergies(fp32_add_pj=value)


def test_mac_rejects_an_unknown_dtype():
    with pytest.raises(ConfigError, match="dtype"):
        HOROWITZ_45NM.mac_pj("fp16")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"e_pj_per_bit": -1.0}, r"Link\.e_pj_per_bit"),
        ({"latency_s": -1e-9}, r"Link\.latency_s"),
        ({"bandwidth_bits_per_s": 0.0}, r"Link\.bandwidth_bits_per_s"),
    ],
)
def test_link_rejects_bad_fields(kwargs, field):
    base = {"name": "t", "e_pj_per_bit": 1.0, "latency_s": 1e-9, "bandwidth_bits_per_s": 1e9}
    with pytest.raises(ConfigError, match=field):
        Link(**{**base, **kwargs})


def test_link_rejects_negative_bits_or_length():
    with pytest.raises(ConfigError, match="bits"):
        ON_DIE.energy_pj(-1)
    with pytest.raises(ConfigError, match="length_mm"):
        ON_DIE.energy_pj(1, length_mm=-1.0)
    with pytest.raises(ConfigError, match="bits"):
        ON_DIE.latency_for_s(-1)
