"""Trainer machinery shared by the method families: the base trainer (`hf_lilaw.core.base_trainer`), columns
and label checks, side-batch samplers, extra checkpoint state, model cards."""
