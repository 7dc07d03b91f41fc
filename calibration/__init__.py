"""Sim2real calibration: recorded runs, k-step prediction, gap metrics, system identification, reports."""
