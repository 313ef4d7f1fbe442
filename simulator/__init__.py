"""rlsim: a discrete-event performance simulator for RL post-training with speculative decoding."""

__version__ = "0.1.0"
