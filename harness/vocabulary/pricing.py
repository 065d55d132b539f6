"""Joules a reader can price: energy turned into kilowatt-hours, grams of CO2-equivalent and money.

The three numbers that do it are the reader's to give; the defaults below are stated and cited here (and in
the book's chapters that use them) and are never fetched at run time:

* ``grid_intensity_grams_per_kwh`` -- grams of CO2-equivalent emitted per kWh drawn from the grid. Default
  436 g/kWh: the world average carbon intensity of electricity generation in 2022, from Ember's *Global
  Electricity Review 2023* (April 2023). A region's own figure (from its grid operator, Ember's yearly data or
  electricityMaps) can differ several times over: in 2023 from under 100 g/kWh (France, Finland) to over 700
  (India) in Ember's yearly data.
* ``price_per_kwh`` -- the price of one kWh in ``currency``. Default 0.0806 USD/kWh: the average retail
  price of electricity to industrial customers in the United States in 2023, 8.06 cents/kWh (U.S. Energy
  Information Administration, *Electric Power Annual 2023*).
* ``pue`` -- power usage effectiveness: the facility's energy over its IT equipment's energy (cooling, power
  conversion, lighting). Default 1.58: the industry average of the Uptime Institute *Global Data Center
  Survey 2023*. A hyperscale facility reports 1.1-1.2.

The chain, for an energy measured at the GPUs (or the node)::

    kwh_it       = joules / 3.6e6
    kwh_facility = kwh_it x pue
    grams_co2e   = kwh_facility x grid_intensity_grams_per_kwh
    cost         = kwh_facility x price_per_kwh

It prices only the energy the harness measured (GPU energy, or the node's where CPU and DRAM energy were
read): embodied emissions of the hardware, the network and idle capacity held in reserve are outside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

JOULES_PER_KWH = 3.6e6
TOKENS_PER_MILLION = 1e6

GRID_INTENSITY_SOURCE = (
    "Ember, Global Electricity Review 2023 (April 2023): world average carbon intensity of "
    "electricity generation in 2022, 436 gCO2/kWh"
)
PRICE_SOURCE = (
    "U.S. Energy Information Administration, Electric Power Annual 2023: average retail price to "
    "industrial customers in 2023, 8.06 cents/kWh"
)
PUE_SOURCE = "Uptime Institute, Global Data Center Survey 2023: industry average PUE 1.58"


@dataclass(frozen=True)
class PricingAssumptions:
    """What one kWh costs the planet and the wallet, and how much the facility adds to the IT equipment's energy.

    ``grid_intensity_grams_per_kwh``: g CO2-equivalent per kWh drawn; ``price_per_kwh``: ``currency`` per kWh;
    ``pue``: facility energy over IT energy (at least 1).
    """

    grid_intensity_grams_per_kwh: float = 436.0
    price_per_kwh: float = 0.0806
    currency: str = "USD"
    pue: float = 1.58

    def __post_init__(self) -> None:
        from harness.errors import HarnessError

        for name in ("grid_intensity_grams_per_kwh", "price_per_kwh", "pue"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise HarnessError(f"pricing: {name} must be a finite number >= 0, got {value!r}")
        if self.pue < 1:
            raise HarnessError(
                f"pricing: a PUE below 1 is impossible (facility energy includes the IT energy), got {self.pue!r}"
            )
        if not isinstance(self.currency, str) or not self.currency.isalpha():
            raise HarnessError(f"pricing: currency must be a code such as USD or EUR, got {self.currency!r}")

    def with_values(
        self,
        grid_intensity_grams_per_kwh: float | None = None,
        price_per_kwh: float | None = None,
        currency: str | None = None,
        pue: float | None = None,
    ) -> PricingAssumptions:
        """These assumptions with the values given (None keeps the current one)."""
        return replace(
            self,
            grid_intensity_grams_per_kwh=self.grid_intensity_grams_per_kwh
            if grid_intensity_grams_per_kwh is None
            else grid_intensity_grams_per_kwh,
            price_per_kwh=self.price_per_kwh if price_per_kwh is None else price_per_kwh,
            currency=self.currency if not currency else currency.upper(),
            pue=self.pue if pue is None else pue,
        )

    @property
    def cost_column_suffix(self) -> str:
        """The unit suffix of a cost column (``usd``), lower case."""
        return self.currency.lower()

    def describe(self) -> str:
        """One line a reader can check: the three numbers and whether each is the cited default."""
        default = DEFAULT_PRICING
        parts = [
            f"grid {self.grid_intensity_grams_per_kwh:g} gCO2e/kWh"
            + (
                " (default: Ember 2022 world average)"
                if self.grid_intensity_grams_per_kwh == default.grid_intensity_grams_per_kwh
                else " (given)"
            ),
            f"price {self.price_per_kwh:g} {self.currency}/kWh"
            + (
                " (default: EIA 2023 US industrial)"
                if (self.price_per_kwh, self.currency) == (default.price_per_kwh, default.currency)
                else " (given)"
            ),
            f"PUE {self.pue:g}" + (" (default: Uptime 2023 average)" if self.pue == default.pue else " (given)"),
        ]
        return "; ".join(parts)


DEFAULT_PRICING = PricingAssumptions()


@dataclass(frozen=True)
class PricedEnergy:
    """An energy in the units a reader prices: kWh at the equipment and at the facility's meter, g CO2e, money."""

    joules: float
    kwh_it: float
    kwh_facility: float
    grams_co2e: float
    cost: float
    currency: str


def price_energy(joules: float | None, assumptions: PricingAssumptions = DEFAULT_PRICING) -> PricedEnergy | None:
    """``joules`` (J, measured at the IT equipment) priced under ``assumptions``; None when ``joules`` is None or
    not a finite number (an energy that was not measured is never priced as 0)."""
    if joules is None or not isinstance(joules, (int, float)) or not math.isfinite(joules):
        return None
    kwh_it = float(joules) / JOULES_PER_KWH
    kwh_facility = kwh_it * assumptions.pue
    return PricedEnergy(
        float(joules),
        kwh_it,
        kwh_facility,
        kwh_facility * assumptions.grid_intensity_grams_per_kwh,
        kwh_facility * assumptions.price_per_kwh,
        assumptions.currency,
    )
