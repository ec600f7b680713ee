# retain_grad: keep the gradient of a non-leaf tensor
import torch

x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
h = x * 2
h.retain_grad()
out = (h ** 2).sum()
out.backward()
print("x.grad:", x.grad)
print("h.grad:", h.grad)
