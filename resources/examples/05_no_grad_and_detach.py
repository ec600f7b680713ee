# Cutting the graph: no_grad, detach, requires_grad_
import torch

x = torch.randn(3, requires_grad=True)
y = x * 2

with torch.no_grad():
    z = x ** 2          # made under no_grad: no history

d = x.detach()          # same values, cut off from the graph

a = torch.randn(2, 2)
a = (a * 3) / (a - 1)
a.requires_grad_(True)  # a plain tensor becomes a leaf
b = (a * a).sum()
print(y.requires_grad, z.requires_grad, d.requires_grad, b.grad_fn)
