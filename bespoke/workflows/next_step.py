"""Who must act next on an order, and by when: the `next_step` and
`next_step_due` that `status` shows and the read model keeps (the portal's ops
queues sort on them), and the amount the buyer owes now.

Pure functions of the workflow's state and its running deadlines: no commands,
so nothing here changes a history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bespoke.domain.models import Stage
from bespoke.domain.state import Case, CaseState, Part


def amount_due(wf: Any, part: Part | None) -> int:
    """What the buyer must pay now: the open part's amount, or, once the order
    is completed or refunded, the credit still outstanding."""
    if part is not None:
        return part.due
    return wf.s.credit_outstanding if wf.s.stage in (Stage.COMPLETED, Stage.REFUNDED) else 0


def next_step(wf: Any, part: Part | None) -> tuple[str, datetime | None]:
    """Who must act next, and by when: the due time of the deadline whose default
    action follows if they do not (None when no deadline runs on it)."""
    step, deadline = _step_and_deadline(wf, part)
    view = wf.deadlines.get(deadline) if deadline else None
    return step, view.due_at if view is not None else None


def _step_and_deadline(wf: Any, part: Part | None) -> tuple[str, str | None]:
    s = wf.s
    if s.closing and not s.closed:
        return "the cancellation is being carried out", None
    if s.stage is Stage.AWAITING_ACCEPTANCE:
        if not s.consented:
            return ("buyer agrees to the order" if s.accepted
                    else "seller accepts and buyer agrees to the order"), "seller_acceptance"
        return "seller accepts the order", "seller_acceptance"
    if part is not None:
        return f"buyer pays the {wf._part_label(part)}", {
            Stage.AWAITING_DEPOSIT: "deposit"}.get(s.stage, "retention" if part.name == "retention" else "balance")
    case = s.case
    if case is not None and case.started:
        return case_step(case)
    by_plan = wf.plan.next_step(wf)
    if by_plan is not None:
        return by_plan, {Stage.DELIVERED: "cod_remittance"}.get(s.stage, "credit_settlement")
    return {
        Stage.IN_PRODUCTION: ("seller records milestones and finishes production", "promised_delivery"),
        Stage.QUALITY_CHECK: (("seller ships the goods", "promised_delivery") if s.qc_passed
                              else ("seller records the quality check", "promised_delivery")),
        Stage.AWAITING_BALANCE: ("seller ships the goods", "promised_delivery"),
        Stage.SHIPPED: ("carrier records delivery", None),
        Stage.DELIVERED: ("buyer inspects and confirms receipt", "inspection_window"),
    }.get(s.stage, ("none", None))


def case_step(case: Case) -> tuple[str, str | None]:
    """The next step of an open after-sales case: who acts, on which deadline."""
    n = f"case {case.number}"
    if case.state is CaseState.DISPUTED:
        if case.awaiting_arbitration:
            return f"platform operations decide the dispute ({n})", None
        return f"buyer and seller submit their evidence ({n})", "dispute_evidence"
    return {
        CaseState.REQUESTED: (f"seller responds to the return ({n})", "return_response"),
        CaseState.OFFERED_PARTIAL: (f"buyer answers the seller's partial-refund offer ({n})", "offer_response"),
        CaseState.OFFERED_REPAIR: (f"buyer answers the seller's repair offer ({n})", "offer_response"),
        CaseState.REJECTED: (f"buyer or seller may open a dispute ({n})", "escalation"),
        CaseState.APPROVED: (f"buyer ships the goods back ({n})", "return_ship"),
        CaseState.IN_TRANSIT: (f"seller confirms the returned goods ({n})", "return_receive"),
        CaseState.RECEIVED: ((f"seller reships the repaired goods ({n})", "repair") if case.remedy == "repair"
                             else (f"the refund goes out ({n})", None)),
        CaseState.RESHIPPED: (f"carrier delivers the repaired goods ({n})", None),
    }.get(case.state, (f"{n} is being closed", None))
