# Autograd: z = y * y * 3, out = z.mean()
import torch

x = torch.ones(2, 2, requires_grad=True)
y = x + 2
z = y * y * 3
out = z.mean()
print("out.grad_fn:", out.grad_fn)

out.backward()
print("x.grad:", x.grad)
