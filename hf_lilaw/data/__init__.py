"""Data sets for the examples, split like the LiLAW paper (§4.1), plus model-input transforms.

Every loader returns a `datasets.DatasetDict` with

- ``train``: the training data minus the meta split,
- ``meta``: a seeded, class-stratified split carved from the training data (15 % by default, paper A.11);
  LiLAW draws its validation batches from it,
- ``test``: the data set's own test split, untouched (sets without one get a seeded, stratified 20 % carve
  made *before* the meta carve),
- ``validation``: only where the source ships one (MedMNIST), untouched,

a ``label`` column of type `ClassLabel`, a ``sample_id`` column (the row's position in its source split,
so train and meta ids never collide), and one input column: ``image`` (`datasets.Image`), ``series``
(floats, ``(length,)`` or ``(length, channels)``) or ``features`` (list of floats, tabular data already
encoded). Every split is named after its key (`Dataset.split`), so `hf_lilaw.noise` refuses to noise ``test``.

Offline sets (no network): ``digits`` (scikit-learn's bundled 8×8 digits), ``synthetic_ecg`` and
``synthetic_adult`` (seeded NumPy generators), ``ucr/<name>`` for the UCR/UEA sets aeon bundles
(``ucr/ArrowHead``, ``ucr/GunPoint``, ...; other UCR sets are downloaded by aeon), and ``fashion_mnist``
read from its IDX files when found (else from the Hub). Hub sets: ``cifar10``, ``cifar100``, ``mnist``,
the MedMNIST v2 2D sets by their flags (``pathmnist``, ``dermamnist``, ...), ``ecg5000`` (UCR files you
point to) and ``adult``. Any other image set by Hub id (``"AI-Lab-Makerere/beans"``) or local folder:
`load_image_dataset`, which `load_classification_dataset` calls for such names.

Modules: `registry` (names → loaders), `splits` (the meta and test carves), one module per source
(`digits`, `ecg`, `adult`, `fashion_mnist`, `images`, `ucr`) and `transforms` (columns → model inputs).
"""

from .adult import load_adult, load_synthetic_adult
from .digits import load_digits_images
from .ecg import ECG5000_CLASS_NAMES, load_ecg5000, load_synthetic_ecg
from .fashion_mnist import FASHION_MNIST_CLASS_NAMES, fashion_mnist_arrays, load_fashion_mnist
from .images import MEDMNIST_NUM_CLASSES, MEDMNIST_REPO, load_image_dataset, load_medmnist
from .registry import DatasetLoader, available_datasets, dataset_key, load_classification_dataset, register_dataset
from .splits import finish_splits, with_meta_split
from .transforms import PASSTHROUGH_COLUMNS, image_transforms, vector_transform
from .ucr import bundled_ucr_sets, load_ucr

__all__ = [
    "DatasetLoader",
    "ECG5000_CLASS_NAMES",
    "FASHION_MNIST_CLASS_NAMES",
    "MEDMNIST_NUM_CLASSES",
    "MEDMNIST_REPO",
    "PASSTHROUGH_COLUMNS",
    "available_datasets",
    "bundled_ucr_sets",
    "dataset_key",
    "fashion_mnist_arrays",
    "finish_splits",
    "image_transforms",
    "load_adult",
    "load_classification_dataset",
    "load_digits_images",
    "load_ecg5000",
    "load_fashion_mnist",
    "load_image_dataset",
    "load_medmnist",
    "load_synthetic_adult",
    "load_synthetic_ecg",
    "load_ucr",
    "register_dataset",
    "vector_transform",
    "with_meta_split",
]
