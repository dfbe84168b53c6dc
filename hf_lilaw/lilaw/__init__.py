"""LiLAW: per-sample loss weights from three learned scalars, one meta step per optimizer step."""
