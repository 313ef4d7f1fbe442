"""Calibrated GPU cost model: pure per-operator time functions and the per-step model built on them.

Units throughout: seconds, bytes, FLOPs, FLOP/s, bytes/s.
"""
