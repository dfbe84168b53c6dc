"""Training dynamics, per-sample hardness scores, label-issue detection and plots: tools beside the method
families, fed by any trainer's `TrainingDynamicsRecorder`. Names load on first use (matplotlib only for plots)."""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "TrainingDynamics": ".dynamics",
    "TrainingDynamicsRecorder": ".dynamics",
    "HARDNESS_SCORES": ".scores",
    "DataIQ": ".scores",
    "DataMaps": ".scores",
    "data_iq": ".scores",
    "data_maps": ".scores",
    "find_label_issues": ".label_issues",
    "label_issue_metrics": ".label_issues",
    "AutomaticSplit": ".label_issues",
    "automatic_threshold": ".label_issues",
    "dip_statistic": ".label_issues",
    "otsu_threshold": ".label_issues",
    "clean_labels": ".cleaning",
    "plot_data_map": ".plots",
    "plot_weight_histogram": ".plots",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
