"""Datasets by name: ``load_dataset(name, split, root=None, profile=...) -> (dataset, class_names)``.

Every dataset yields ``(PIL RGB image, int label)`` and has ``.targets``. The built-in names are registered
here, all at once, from :data:`BUILTIN`; any image-folder path (``<root>/<class>/<image>``, or
``<root>/<split>/<class>/<image>``) is accepted as well, and :func:`register` adds a loader of your own.
The loader modules never import each other: what they share lives in :mod:`gifkit.data.base`,
:mod:`gifkit.data.longtail` and :mod:`gifkit.data.corruptions`.
"""
from __future__ import annotations

from gifkit.data import cifar, fashion, folder, manifest, medmnist, natural, synthetic
from gifkit.data.base import ArrayDataset, DatasetMissing, FileListDataset
from gifkit.data.folder import ImageFolderDataset
from gifkit.data.registry import available_datasets, load_dataset, register, registered
from gifkit.data.synthetic import SyntheticShapes

__all__ = ["load_dataset", "register", "registered", "available_datasets", "BUILTIN", "ImageFolderDataset",
           "SyntheticShapes", "FileListDataset", "ArrayDataset", "DatasetMissing"]

BUILTIN = {
    # smoke profile: tiny synthetic shapes (no files)
    "smoke": synthetic.load_smoke, "smoke-lt": synthetic.load_smoke_lt,
    # mini profile: the official idx files
    "fashion-mnist": fashion.load_fashion_mnist, "mnist": fashion.load_mnist,
    "fashion-mnist-lt": fashion.load_fashion_mnist_lt, "fashion-mnist-c": fashion.load_fashion_mnist_c,
    # the paper's datasets with the paper's splits
    "cifar100": cifar.load_cifar100, "cifar100s": cifar.load_cifar100s, "cifar100lt": cifar.load_cifar100lt,
    "cifar100c": cifar.load_cifar100c,
    "caltech101": natural.load_caltech101, "cars": natural.load_cars, "stanford_cars": natural.load_cars,
    "flowers102": natural.load_flowers102, "flowers": natural.load_flowers102,
    "flowers102-official": natural.load_flowers102_official, "dtd": natural.load_dtd,
    "pets": natural.load_pets, "oxford_pets": natural.load_pets, "pets-official": natural.load_pets_official,
    "pathmnist": medmnist.load_pathmnist, "breastmnist": medmnist.load_breastmnist,
    "organsmnist": medmnist.load_organsmnist,
    # a user's data
    "imagefolder": folder.load_imagefolder, "manifest": manifest.load_manifest,
}
for _name, _loader in BUILTIN.items():
    register(_name, _loader)
