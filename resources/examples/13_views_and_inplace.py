# Views share storage: view, slices, t(), detach(), expand; in-place ops change them all
import torch

x = torch.arange(16.).reshape(4, 4)
y = x.view(16)           # the same 16 numbers, read as one row
z = x.view(-1, 8)        # -1: torch works out the other size (2)
print(x.size(), y.size(), z.size())

column = x[:, 1]         # a slice: stride 4, not contiguous
xt = x.t()               # transposed: strides swapped, not contiguous
copy = xt.contiguous()   # a real copy, laid out row by row
frozen = x.detach()      # no autograd history, but the very same storage
wide = x[0].expand(3, 4)  # the first row repeated without copying (stride 0)

x.add_(100)              # in place: every view above sees it; their _version goes up
print(column)            # tensor([101., 105., 109., 113.])
print(copy[0])           # the copy does not change: tensor([0., 4., 8., 12.])
