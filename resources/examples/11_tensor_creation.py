# Creating tensors: directly, by value, by distribution
# Tensor → New tensor… (Ctrl+Shift+N) writes such lines for you, with a preview.
import numpy as np
import torch

# Directly, from data: torch.tensor copies it; torch.from_numpy shares the array's memory.
t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
arr = np.array([[1, 2, 3], [4, 5, 6]])
shared = torch.from_numpy(arr)
arr[0, 0] = 0  # changes `shared` too: one storage, two views
print(shared)

# By value: a shape, or a range of numbers.
zeros = torch.zeros(2, 3)
ones = torch.ones(2, 3, dtype=torch.int64)
sevens = torch.full((2, 2), 7.0)
identity = torch.eye(3)
steps = torch.arange(0, 10, step=2)  # 0, 2, 4, 6, 8: the end is left out
line = torch.linspace(0, 1, steps=5)  # 0, 0.25, 0.5, 0.75, 1: both ends in
powers = torch.logspace(0, 3, steps=4)  # 1, 10, 100, 1000
like = torch.zeros_like(t)  # t's shape and dtype

# out= writes into an existing tensor: both names are then one tensor.
out_t = torch.tensor([1.0])
z = torch.zeros((3, 3), out=out_t)
print(z is out_t)

# By distribution (the seed is fixed, so every run draws the same numbers).
uniform = torch.rand(2, 3)  # in [0, 1)
normal = torch.randn(2, 3)  # mean 0, std 1
shifted = torch.normal(2.0, 0.5, size=(2, 3))  # mean 2, std 0.5
dice = torch.randint(1, 7, size=(10,))  # 1 to 6
order = torch.randperm(5)  # 0..4 shuffled
coins = torch.bernoulli(torch.full((2, 4), 0.5))  # 0 or 1, each with probability 0.5
picks = torch.multinomial(torch.tensor([0.1, 0.3, 0.6]), 2)  # two indices, weighted
print(dice, order, picks)
