# A custom autograd Function
import torch


class CubeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * grad_out


x = torch.tensor([1.0, 2.0], requires_grad=True)
y = CubeFn.apply(x)
s = y.sum()
s.backward()
print(x.grad)  # 3 * x**2
