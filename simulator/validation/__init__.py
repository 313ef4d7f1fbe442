"""Validation of predictions against measurements the models were not fitted on."""
