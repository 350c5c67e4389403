"""Custom search attributes every order workflow sets, so the Temporal Web UI and
`bespoke order list` can filter orders by stage, buyer, seller and payment plan."""

from temporalio.common import SearchAttributeKey

STAGE = SearchAttributeKey.for_keyword("BespokeStage")
BUYER = SearchAttributeKey.for_keyword("BespokeBuyer")
SELLER = SearchAttributeKey.for_keyword("BespokeSeller")
PAYMENT_PLAN = SearchAttributeKey.for_keyword("BespokePaymentPlan")

ALL_KEYS = (STAGE, BUYER, SELLER, PAYMENT_PLAN)
