"""Model prices (USD per million tokens) and the cost of an LLM call.

`cost_usd` on an event wins; when absent, cost is computed here. Prices are list prices of
widely used models at the time of writing; every entry can be overridden, and new models added,
in settings (`[pricing."my-model"]`). A resolved checkpoint such as `gpt-4o-2024-08-06` is priced
by the longest known model name it starts with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from monitor.contract.wire import AnyLlmCall


class ModelPrice(BaseModel):
    model_config = ConfigDict(frozen=True)

    input: float = Field(ge=0, description="USD per million input (prompt) tokens")
    output: float = Field(ge=0, description="USD per million output tokens")
    cached_input: float | None = Field(
        default=None, ge=0, description="USD per million cached input tokens (default: the input price)"
    )


def _p(i: float, o: float, c: float | None = None) -> ModelPrice:
    return ModelPrice(input=i, output=o, cached_input=c)


DEFAULT_PRICES: dict[str, ModelPrice] = {
    # OpenAI
    "gpt-4o": _p(2.50, 10.00, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "gpt-4.1": _p(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "o3": _p(2.00, 8.00, 0.50),
    "o4-mini": _p(1.10, 4.40, 0.275),
    # Anthropic
    "claude-3-5-sonnet": _p(3.00, 15.00, 0.30),
    "claude-3-7-sonnet": _p(3.00, 15.00, 0.30),
    "claude-sonnet-4": _p(3.00, 15.00, 0.30),
    "claude-3-5-haiku": _p(0.80, 4.00, 0.08),
    "claude-opus-4": _p(15.00, 75.00, 1.50),
    # Google
    "gemini-1.5-pro": _p(1.25, 5.00, 0.3125),
    "gemini-2.0-flash": _p(0.10, 0.40, 0.025),
    "gemini-2.5-pro": _p(1.25, 10.00, 0.31),
    "gemini-2.5-flash": _p(0.30, 2.50, 0.075),
}


def cost_at(call: AnyLlmCall, rates: tuple[float, float, float] | None) -> float | None:
    """USD of one call at `rates` (`PricingTable.call_rates`): its own `cost_usd`, else computed;
    None when `rates` is None (unknown model). The engine keeps each call's rates with its model
    key, so it calls this rather than `PricingTable.call_cost` (one dict lookup less per call)."""
    cost = call.cost_usd
    if cost is not None:
        return cost
    if rates is None:
        return None
    input_tokens = call.input_tokens
    cached = min(call.cached_input_tokens or 0, input_tokens)
    return ((input_tokens - cached) * rates[0] + cached * rates[1] + call.output_tokens * rates[2]) / 1_000_000


class PricingTable:
    """Looks up prices by model name; overrides replace or extend the defaults."""

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices = dict(DEFAULT_PRICES)
        self._prices.update(overrides or {})
        # Longest names first, so `gpt-4o-mini-2024-07-18` prices as gpt-4o-mini, not gpt-4o.
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self._cache: dict[str, ModelPrice | None] = {}
        self._rates: dict[tuple[str, str | None], tuple[float, float, float] | None] = {}

    def price(self, model: str) -> ModelPrice | None:
        try:
            return self._cache[model]
        except KeyError:
            pass
        found = self._prices.get(model)
        if found is None:
            found = next((self._prices[n] for n in self._by_length if model.startswith(n)), None)
        if len(self._cache) < 10_000:  # bounded: model names come from producers
            self._cache[model] = found
        return found

    def call_rates(self, model: str, resolved: str | None) -> tuple[float, float, float] | None:
        """(input, cached input, output) USD per million tokens of a call to `model` served by
        `resolved` (None: unknown model): what `cost_at` prices a call at."""
        try:
            return self._rates[(model, resolved)]
        except KeyError:
            return self._rates_of(model, resolved)

    def call_cost(self, call: AnyLlmCall) -> float | None:
        """USD of one call: its own `cost_usd`, else computed; None when the model is unknown."""
        if call.cost_usd is not None:
            return call.cost_usd
        return cost_at(call, self.call_rates(call.model, call.resolved_model))

    def _rates_of(self, model: str, resolved: str | None) -> tuple[float, float, float] | None:
        """(input, cached input, output) USD per million tokens for a call (cached per names)."""
        price = self.price(resolved or model) or self.price(model)
        rates = None if price is None else (
            price.input, price.input if price.cached_input is None else price.cached_input, price.output)
        if len(self._rates) < 10_000:  # bounded: model names come from producers
            self._rates[(model, resolved)] = rates
        return rates

    def calls_cost(self, calls: Iterable[AnyLlmCall]) -> tuple[float, int]:
        """Total USD of calls, and how many could not be priced (unknown model)."""
        total = 0.0
        unpriced = 0
        for call in calls:
            cost = self.call_cost(call)
            if cost is None:
                unpriced += 1
            else:
                total += cost
        return total, unpriced
