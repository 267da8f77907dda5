"""Energy, latency and area: cited per-operation tables, CIM macro and digital processor
models, the cost of Bayesian sampling, per-model reports, and chiplet / 3D systems.

Typical use, after converting a model with :func:`memcim.nn.convert`::

    report = memcim.energy.profile(cim_model, x)          # measured from tile counters
    bnn = memcim.energy.profile(hardware_bnn, x, samples=64)  # to_hardware: tile counters too
    digital = memcim.energy.profile(model, x, processor=memcim.energy.EDGE_CPU)
    print(report.table(), report.tops_per_w)
"""

from memcim.energy.bayes import (
    SCHEMES,
    bayes_cim_cost,
    bayes_digital_cost,
    combine_energy_pj,
    scheme_cost,
)
from memcim.energy.cim import (
    ArrayAssumptions,
    CIMCost,
    CIMEnergyModel,
    TileGeometry,
    counters_cost,
    estimate_cost,
    matrix_cost,
    tile_cost,
)
from memcim.energy.digital import (
    EDGE_CPU,
    EDGE_NPU,
    GPU,
    MCU,
    PROCESSORS,
    DigitalCost,
    DigitalProcessor,
)
from memcim.energy.report import EnergyReport, LayerEnergy, profile
from memcim.energy.tables import (
    CELL_AREA_F2,
    HOROWITZ_45NM,
    LINKS,
    Link,
    OperationEnergies,
    adc_energy_pj,
)

__all__ = [
    "CELL_AREA_F2",
    "EDGE_CPU",
    "EDGE_NPU",
    "GPU",
    "HOROWITZ_45NM",
    "LINKS",
    "MCU",
    "PROCESSORS",
    "SCHEMES",
    "ArrayAssumptions",
    "CIMCost",
    "CIMEnergyModel",
    "DigitalCost",
    "DigitalProcessor",
    "EnergyReport",
    "LayerEnergy",
    "Link",
    "OperationEnergies",
    "TileGeometry",
    "adc_energy_pj",
    "bayes_cim_cost",
    "bayes_digital_cost",
    "combine_energy_pj",
    "counters_cost",
    "estimate_cost",
    "matrix_cost",
    "profile",
    "scheme_cost",
    "tile_cost",
]
