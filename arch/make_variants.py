"""Derive isaac64/256/512.yaml from isaac128.yaml by the crossbar-size scaling rules below.

Run ``python arch/make_variants.py`` after changing isaac128.yaml; ``tests/test_arch_files.py``
checks that the committed variants are exactly what this script writes.

Rules, for a crossbar of R×R cells (R = 128 is ISAAC-CE itself):

* Iso-capacity: every tile keeps ISAAC's 12 × 8 × 128² cells, so one network fits every point of a
  crossbar-size sweep. A PE keeps 8 × 128² cells: 8·(128/R)² crossbars of R×R (32 at R = 64, 2 at
  R = 256); at R = 512 one crossbar holds two PEs' worth, so a PE is one crossbar and a tile has 6.
* One DAC per row and one sample-and-hold per column, each at ISAAC's unit cost.
* ADC resolution by ISAAC's rule A = log2(R) + v + w − 1, minus 1 with the flipped (offset)
  encoding (v = DAC bits, w = cell bits): 7, 8, 9, 10 bits at R = 64, 128, 256, 512.
* One ADC per crossbar converts its R columns within the 100 ns read cycle, so its sample rate is
  R / 100 ns. ADC power and area follow a constant Walden figure of merit, ∝ 2^A · f_s, from ISAAC's
  2 mW, 0.0012 mm² at 8 bits and 1.28 GS/s (area grows with f_s too: time-interleaved copies).
* Crossbar array power and area ∝ R² (the cell-read energy is unchanged).
* Shift-and-add units, and the tier-2 scaling units behind them, scale with the PE's ADC conversion
  rate (ISAAC: 4 units for 8 ADCs at 1.28 GS/s); tier-2 scale registers hold one scale per weight
  column a PE can output at 16-bit offset precision (8 columns per weight), sized and costed
  pro rata from isaac128's.
* The chip's write-power budget is isaac128's; how many crossbars program at once follows from it
  (xsim/write_model.py), as does each crossbar's write time from its rows.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE_ROWS = 128
C = "components"


def _fmt(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.6g}"


def variant(rows: int) -> dict[tuple[str, ...], tuple[str, str]]:
    """Key path → (value, comment) replacements for an R = ``rows`` variant."""
    k = rows / BASE_ROWS
    crossbars_per_pe = max(1, round(8 / k**2))
    pes_per_tile = 12 if k**2 <= 8 else round(12 * 8 / k**2)
    adc_bits = int(math.log2(rows)) + 1 + 2 - 1 - 1
    rate = rows / 100.0
    fom = 2.0 ** (adc_bits - 8) * rate / 1.28
    conversions = crossbars_per_pe * rate
    units = max(1, round(4 * conversions / (8 * 1.28)))
    registers = crossbars_per_pe * rows // 8
    reg_bytes = registers * 4 / 8
    rule = "derived (arch/make_variants.py)"
    return {
        ("name",): (f"isaac{rows}", ""),
        ("description",): (
            f"ISAAC-CE scaled to {rows}x{rows} crossbars at iso-capacity (arch/make_variants.py)", ""),
        ("crossbar", "rows"): (str(rows), f"{rule}: crossbar size of this variant"),
        ("crossbar", "columns"): (str(rows), f"{rule}: crossbar size of this variant"),
        (C, "crossbar", "power_mw"): (_fmt(0.3 * k**2), f"{rule}: ISAAC 0.3 mW x (R/128)^2"),
        (C, "crossbar", "area_mm2"): (_fmt(0.000025 * k**2), f"{rule}: ISAAC 0.000025 mm2 x (R/128)^2"),
        ("hierarchy", "crossbars_per_group"):
            (str(crossbars_per_pe), f"{rule}: 8 x (128/R)^2 crossbars, iso-capacity PE"),
        (C, "dac", "count"): (str(rows), f"{rule}: one DAC per row"),
        (C, "sample_hold", "count"): (str(rows), f"{rule}: one per column"),
        (C, "adc", "bits"): (str(adc_bits), f"{rule}: ISAAC rule log2(R) + v + w - 1 - 1"),
        (C, "adc", "sample_rate_gsps"): (_fmt(rate), f"{rule}: R columns per 100 ns read cycle"),
        (C, "adc", "power_mw"): (_fmt(2.0 * fom), f"{rule}: 2 mW x 2^(A-8) x fs/1.28 GS/s (Walden FOM)"),
        (C, "adc", "area_mm2"): (_fmt(0.0012 * fom), f"{rule}: 0.0012 mm2 x 2^(A-8) x fs/1.28 GS/s"),
        (C, "adc", "leakage_mw"): (_fmt(0.2 * fom), f"{rule}: 0.1 of its power (PUMAsim's share)"),
        (C, "pe_shift_add", "count"): (str(units), f"{rule}: 4 per 8 x 1.28 GS/s of ADC conversions"),
        ("hierarchy", "pes_per_tile"):
            (str(pes_per_tile), f"{rule}: iso-capacity tile of 12 x 8 x 128^2 cells"),
        (C, "tier2_scale", "count"): (str(units), f"{rule}: one behind each shift-and-add unit"),
        ("tier2", "registers_per_pe"): (str(registers), f"{rule}: PE crossbars x R/8 weight columns"),
        (C, "tier2_register", "size_kb"):
            (_fmt(reg_bytes / 1024), f"{rule}: {registers} scales x 4 bits"),
        (C, "tier2_register", "power_mw"):
            (_fmt(0.23 * reg_bytes / 256), f"{rule}: ISAAC OR 0.23 mW x bytes/256"),
        (C, "tier2_register", "leakage_mw"):
            (_fmt(0.2 * 0.23 * reg_bytes / 256), f"{rule}: 0.2 of its power (PUMAsim's share)"),
        (C, "tier2_register", "area_mm2"):
            (_fmt(0.00077 * reg_bytes / 256), f"{rule}: ISAAC OR 0.00077 mm2 x bytes/256"),
    }


_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


def render(base_text: str, rows: int) -> str:
    changes = variant(rows)
    out, stack = [], []
    header = (f"# GENERATED by arch/make_variants.py from isaac128.yaml: ISAAC-CE scaled to "
              f"{rows}x{rows} crossbars.\n# The scaling rules are in that script's docstring; "
              "figures not marked 'derived (arch/make_variants.py)' are isaac128's.\n")
    for line in base_text.splitlines():
        match = _LINE.match(line)
        if not match:
            out.append(line)
            continue
        depth = len(match["indent"]) // 2
        stack = stack[:depth] + [match["key"]]
        path = tuple(stack)
        if path in changes:
            value, comment = changes[path]
            if path == ("description",) or path == ("name",):
                line = f"{match['indent']}{match['key']}: {value}"
            else:
                line = f"{match['indent']}{match['key']}: {value}".ljust(29) + f"# {comment}"
        out.append(line)
    return header + "\n".join(out) + "\n"


def main() -> None:
    base = (HERE / "isaac128.yaml").read_text(encoding="utf-8")
    for rows in (64, 256, 512):
        (HERE / f"isaac{rows}.yaml").write_text(render(base, rows), encoding="utf-8")


if __name__ == "__main__":
    main()
