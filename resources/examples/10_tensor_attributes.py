# Tensor attributes: data, dtype, shape, device, requires_grad, grad, grad_fn, is_leaf
import torch

# Four attributes describe the data itself.
x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
print("data:", x.data)
print("dtype:", x.dtype)  # torch.float32, the default for Python floats
print("shape:", x.shape)  # torch.Size([2, 3]); x.size() says the same
print("device:", x.device)  # cpu, or cuda:0 for a tensor on a GPU

# Four attributes are about gradients.
w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)  # a leaf we want gradients for
y = (x * w).sum()  # made by an operation: it has a grad_fn
y.backward()
print("requires_grad:", w.requires_grad, y.requires_grad, x.requires_grad)
print("grad:", w.grad)  # dy/dw, filled in by backward()
print("grad_fn:", w.grad_fn, y.grad_fn)  # None for a leaf; SumBackward0 for y
print("is_leaf:", w.is_leaf, y.is_leaf, x.is_leaf)

# Integers get int64; dtype= asks for another type.
n = torch.tensor([1, 2, 3])
h = torch.tensor([1, 2, 3], dtype=torch.float64)
print(n.dtype, h.dtype)
