"""Training dynamics, per-sample hardness scores, label-issue detection and plots."""
