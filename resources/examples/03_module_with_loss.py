# A small nn.Module with a loss
import torch
from torch import nn

model = nn.Sequential(
    nn.Linear(4, 3),
    nn.ReLU(),
    nn.Linear(3, 2),
)
inputs = torch.randn(5, 4)
target = torch.randn(5, 2)

prediction = model(inputs)
loss = nn.functional.mse_loss(prediction, target)
loss.backward()
print("loss:", loss.item())
