"""The KIE model catalogue: model and price data, lookups, validation and pricing."""

from .pricing import USD_PER_CREDIT, ItemPrice, price_input, usd
from .registry import AmbiguousModelError, Catalog, UnknownModelError, WithdrawnModelError, load_catalog
from .spec import ModelSpec
from .validate import InvalidRequest, Problem, apply_defaults, build_input, check_input

__all__ = [
    "USD_PER_CREDIT",
    "AmbiguousModelError",
    "Catalog",
    "InvalidRequest",
    "ItemPrice",
    "ModelSpec",
    "Problem",
    "UnknownModelError",
    "WithdrawnModelError",
    "apply_defaults",
    "build_input",
    "check_input",
    "load_catalog",
    "price_input",
    "usd",
]
