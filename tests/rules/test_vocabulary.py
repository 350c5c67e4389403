"""One vocabulary: each shared word is declared once and every layer uses that one."""

from __future__ import annotations

import importlib
import pkgutil
from typing import get_args

from pydantic import BaseModel

import bespoke.domain
import bespoke.rules
from bespoke.domain import models as domain_models
from bespoke.domain import money as domain_money
from bespoke.domain.vocabulary import Frozen, PlanKind, ReturnReason
from bespoke.rules import facts, model, money
from bespoke.rules.schema import CANCELLATION_FACTS, TABLE_SCHEMAS, fact_specs


def _modules(pkg: object) -> list[object]:
    names = [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]  # type: ignore[attr-defined]
    return [importlib.import_module(n) for n in names]


def test_every_frozen_forbid_model_in_rules_and_domain_derives_from_the_one_frozen_base() -> None:
    seen = 0
    for mod in _modules(bespoke.rules) + _modules(bespoke.domain):
        for obj in vars(mod).values():
            if not (isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == mod.__name__):
                continue
            cfg = obj.model_config
            if cfg.get("frozen") and cfg.get("extra") == "forbid":
                seen += 1
                assert issubclass(obj, Frozen), (
                    f"{mod.__name__}.{obj.__name__} is frozen with its own config; derive from bespoke.domain.vocabulary.Frozen"
                )
    assert seen > 40  # the walk really found the models
    assert domain_models.Frozen is Frozen


def test_payment_plan_names_return_reasons_and_allocate_are_the_same_objects_everywhere() -> None:
    assert facts.PAYMENT_PLANS == tuple(k.value for k in PlanKind)
    assert get_args(model.PaymentPlans.model_fields["allowed"].annotation) == (facts.PaymentPlan,)
    assert domain_models.PlanKind is PlanKind
    assert domain_models.ReturnRequestInput.model_fields["reason"].annotation is ReturnReason
    assert facts.ReturnFacts.model_fields["reason"].annotation is ReturnReason
    assert facts.RETURN_REASONS == get_args(ReturnReason)
    assert money.allocate is domain_money.allocate is bespoke.rules.allocate


def test_table_fact_specs_are_read_off_the_facts_models() -> None:
    # Every given fact of a decision is a table fact with the model's own bounds and choices.
    for table, (specs, _outputs) in TABLE_SCHEMAS.items():
        model_cls = model.FACTS_MODELS["return_terms" if table in ("return_shipping", "repair") else table]
        for name, spec in fact_specs(model_cls).items():
            assert specs[name] == spec, (table, name)
    assert CANCELLATION_FACTS["price"].minimum == 1  # CancellationFacts.price is > 0
    assert CANCELLATION_FACTS["stage"].choices == facts.STAGES
    assert "as_of" not in CANCELLATION_FACTS
