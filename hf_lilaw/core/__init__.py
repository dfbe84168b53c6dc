"""Trainer machinery shared by the method families: columns, splits, samplers, checkpoint state, model cards."""
