# CUDA tensors: the tutorial's snippet, with a clear word when there is no GPU
import torch

x = torch.rand(5, 3)

# The tutorial does everything inside `if torch.cuda.is_available():`, so without a
# GPU it silently does nothing. Here the same lines run on whichever device there is.
if torch.cuda.is_available():
    device = torch.device("cuda")
    print(f"Using the GPU: {torch.cuda.get_device_name(0)}")
else:
    device = torch.device("cpu")
    print("No CUDA GPU here (torch.cuda.is_available() is False): running on the CPU instead.")

y = torch.ones_like(x, device=device)  # directly create a tensor on the device
x = x.to(device)                       # or just use strings ``.to("cuda")``
z = x + y
print(z)
print(z.to("cpu", torch.double))       # ``.to`` can also change dtype together!
