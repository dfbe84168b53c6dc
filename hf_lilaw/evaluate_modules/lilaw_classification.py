"""`hf_lilaw.compute_classification_metrics` as an `evaluate` metric: top-1, top-5 and macro AUROC from logits.

Loaded by `hf_lilaw.metrics.load_classification_metric` with `evaluate.load(<this file>)`, so it works offline;
the numbers come from the same function `Trainer(compute_metrics=...)` uses.
"""

import datasets
import evaluate
import numpy as np

from hf_lilaw.metrics import compute_classification_metrics

_DESCRIPTION = """\
Top-1 accuracy, top-5 accuracy (more than five classes only) and macro one-vs-rest AUROC of softmax
probabilities, from a classifier's logits. References labelled -100 are ignored.
"""

_INPUTS = """\
Args:
    predictions: logits, one list of num_classes floats per sample.
    references: integer labels, -100 for rows to ignore.
Returns:
    accuracy, top5_accuracy (only for more than five classes) and roc_auc (NaN with fewer than two classes present).
"""


class LiLAWClassification(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        return compute_classification_metrics((np.asarray(predictions), np.asarray(references)))
