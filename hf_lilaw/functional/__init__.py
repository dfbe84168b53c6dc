"""Pure tensor math, no Trainer: LiLAW weights and meta update, per-sample losses, MLC barrier math, statistics."""
