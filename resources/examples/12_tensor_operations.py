# Tensor operations: cat, stack, chunk, split, index_select, masked_select, reshape, transpose
import torch

a = torch.tensor([[1., 2., 3.], [4., 5., 6.]])
b = torch.tensor([[7., 8., 9.], [10., 11., 12.]])

# Joining: cat puts them end to end along an existing dim, stack adds a new dim
joined = torch.cat([a, b], dim=0)          # (4, 3)
stacked = torch.stack([a, b], dim=0)       # (2, 2, 3)

# Splitting: chunk into equal parts, split into parts of given sizes (views of joined)
chunks = torch.chunk(joined, 2, dim=0)     # two (2, 3) tensors: chunks[0], chunks[1]
parts = torch.split(joined, [1, 3], dim=0)  # a (1, 3) and a (3, 3)

# Indexing: index_select picks rows, masked_select picks the values where the mask holds
rows = torch.index_select(joined, 0, torch.tensor([0, 3]))
mask = joined > 6
big = torch.masked_select(joined, mask)    # 1-d: every value over 6

# Reshaping: reshape and transpose (t() for 2-d); both can share joined's storage
flat = torch.reshape(joined, (12,))
swapped = torch.transpose(joined, 0, 1)
swapped_t = joined.t()

# Arithmetic: +, torch.add(out=), and in place with add_
total = a + b
result = torch.empty(2, 3)
torch.add(a, b, out=result)
a.add_(1)                                  # a changed in place: its _version is now 1
print(total, result, a, sep="\n")
