"""Speculative decoding: acceptance models (`acceptance`) and importers of real measurements (`importers`)."""
from simulator.specdec.acceptance import (
    AcceptanceProfile,
    ChainAcceptance,
    ReplayTraces,
    alpha_from_tau,
    conditional_from_unconditional,
    expected_acceptance_length,
    profile_from_mean_length,
    profile_from_unconditional,
    rates_at_step,
    tau_iid,
)

__all__ = [
    "AcceptanceProfile", "ChainAcceptance", "ReplayTraces", "alpha_from_tau",
    "conditional_from_unconditional", "expected_acceptance_length", "profile_from_mean_length",
    "profile_from_unconditional", "rates_at_step", "tau_iid",
]
