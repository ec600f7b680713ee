# Transforms: ToTensor and a one-hot Lambda
# The tutorial's Transforms chapter: ToTensor turns the PIL image into a float
# tensor in [0, 1]; a Lambda turns the label into a one-hot vector. Fixed from the
# tutorial: `from torchvision.transforms import ...`, and scatter_'s index passed by
# position (the tutorial's `dim = 0, torch.tensor(y)` is a syntax error).
# The Data panel shows one sample going through each step.
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import Lambda, ToTensor

root = Path(__file__).parent.parent / "data"

ds = datasets.FashionMNIST(
    root=root,
    train=True,
    download=True,
    transform=ToTensor(),
    target_transform=Lambda(lambda y: torch.zeros(10, dtype=torch.float).scatter_(0, torch.tensor(y), value=1)),
)
loader = DataLoader(ds, batch_size=32)

image, one_hot = ds[0]
print(image.shape, image.dtype, image.min().item(), image.max().item())
print(one_hot)
