# Tensors on the GPU (falls back to the CPU when there is none)
import torch
from torch import nn

device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

x = torch.tensor([1.0, 2.0, 3.0])
y = torch.ones_like(x, device=device)   # made directly on the device
x = x.to(device)                        # or moved there
z = x + y
back = z.to("cpu", torch.double)        # .to can change device and dtype at once

model = nn.Linear(3, 2).to(device)
inputs = torch.randn(4, 3, device=device)
loss = model(inputs).pow(2).mean()
loss.backward()
print(device, z.device, back.dtype, loss.item())
