# FashionMNIST through a DataLoader
# The tutorial's Dataset & DataLoader chapter (its `trian=True` and `trianing_data` typos
# fixed). Torchscope ships the first 2,000 images of each split in resources/data, so
# this runs offline; with root="data" and no network, the Data panel offers the copy.
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import ToTensor

root = Path(__file__).parent.parent / "data"  # resources/data: the bundled sample

training_data = datasets.FashionMNIST(
    root=root,
    train=True,
    download=True,  # already there: nothing is downloaded
    transform=ToTensor(),
)
test_data = datasets.FashionMNIST(
    root=root,
    train=False,
    download=True,
    transform=ToTensor(),
)

batch_size = 64
train_dataloader = DataLoader(training_data, batch_size=batch_size, shuffle=True)
test_dataloader = DataLoader(test_data, batch_size=batch_size)

for X, y in test_dataloader:
    print(f"Shape of X [N, C, H, W]: {X.shape}")
    print(f"Shape of y: {y.shape} {y.dtype}")
    break

torch.manual_seed(0)  # the batch the Data panel shows for train_dataloader
train_features, train_labels = next(iter(train_dataloader))
print(f"Feature batch shape: {train_features.size()}")
print(f"Labels batch shape: {train_labels.size()}")
img = train_features[0].squeeze()
label = train_labels[0]
print(f"Label: {label} ({training_data.classes[label]})")
