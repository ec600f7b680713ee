# A custom Dataset: a CSV of labels and a folder of images
# The tutorial's CustomImage dataset, reading resources/data/custom/labels.csv
# (`file,label` rows) and its PNGs with torchvision's read_image. The csv module
# stands in for pandas; fixed from the tutorial: `from torchvision.io import`, and
# ConvertImageDtype instead of ToTensor (read_image already gives a uint8 tensor).
import csv
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.io import read_image
from torchvision.transforms import ConvertImageDtype

folder = Path(__file__).parent.parent / "data" / "custom"


class CustomImageDataset(Dataset):
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    def __init__(self, annotations_file, img_dir, transform=None, target_transform=None):
        self.img_labels = []
        with open(annotations_file, newline="") as f:
            reader = csv.reader(f)
            next(reader)  # the header: file,label
            for row in reader:
                self.img_labels.append((row[0], int(row[1])))
        self.img_dir = img_dir
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self):
        return len(self.img_labels)

    def __getitem__(self, idx):
        file, label = self.img_labels[idx]
        image = read_image(os.path.join(self.img_dir, file))
        if self.transform:
            image = self.transform(image)
        if self.target_transform:
            label = self.target_transform(label)
        return image, label


training_data = CustomImageDataset(folder / "labels.csv", folder / "images",
                                   transform=ConvertImageDtype(torch.float))  # uint8 0..255 -> float 0..1
train_dataloader = DataLoader(training_data, batch_size=16, shuffle=True)

torch.manual_seed(0)
train_features, train_labels = next(iter(train_dataloader))
print(f"Feature batch shape: {train_features.size()}")
print(f"Labels batch shape: {train_labels.size()}")
print(f"Label: {train_labels[0]} ({training_data.classes[train_labels[0]]})")
