# NumPy and tensors: .numpy() and from_numpy() share memory; item() gives a number
import numpy as np
import torch

a = torch.ones(5)
b = a.numpy()            # b is a NumPy view of a's storage
a.add_(1)                # changes b too
print(a, b)

c = np.ones(5)
d = torch.from_numpy(c)  # d uses c's memory
np.add(c, 1, out=c)      # changes d too
print(c, d)

e = torch.tensor(c)      # torch.tensor copies: e does not share
x = torch.randn(1)
number = x.item()        # a plain Python float
print(x, number, type(number))
