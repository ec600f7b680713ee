# nn.DataParallel: one batch split over the GPUs (one GPU or none: said, and nothing is split)
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

input_size, output_size = 5, 2
batch_size, data_size = 30, 100

device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


class RandomDataset(Dataset):
    def __init__(self, size, length):
        self.len = length
        self.data = torch.randn(length, size)

    def __getitem__(self, index):
        return self.data[index]

    def __len__(self):
        return self.len


rand_loader = DataLoader(RandomDataset(input_size, data_size), batch_size=batch_size, shuffle=True)


class Model(nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.fc = nn.Linear(input_size, output_size)

    def forward(self, input):
        output = self.fc(input)
        print("\tIn Model: input size", input.size(), "output size", output.size())
        return output


model = Model(input_size, output_size)
gpus = torch.cuda.device_count()
if gpus > 1:
    print(f"{gpus} GPUs: DataParallel splits each batch of {batch_size} into {gpus} slices.")
elif gpus == 1:
    print("One GPU: DataParallel has nothing to split, so the model sees each whole batch on cuda:0.")
else:
    print("No GPU: DataParallel calls the model directly on the CPU, with each whole batch. "
          "With N GPUs each batch would be cut into N slices, one per GPU.")
# The tutorial wraps only when device_count() > 1; wrapping on any machine is harmless,
# and the Devices tab then shows which slice of each batch went where.
model = nn.DataParallel(model)
model.to(device)

for data in rand_loader:
    input = data.to(device)
    output = model(input)
    print("Outside: input size", input.size(), "output_size", output.size())
