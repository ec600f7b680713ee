# nn.DataParallel: one batch split over the GPUs (one GPU or none: said, and run as is)
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
    model = nn.DataParallel(model)
elif gpus == 1:
    print("One GPU: DataParallel would change nothing, so the model runs on cuda:0 as is.")
else:
    print("No GPU: DataParallel needs CUDA, so the model runs on the CPU as is. "
          "With N GPUs each batch would be cut into N slices, one per GPU.")
model.to(device)

for data in rand_loader:
    input = data.to(device)
    output = model(input)
    print("Outside: input size", input.size(), "output_size", output.size())
