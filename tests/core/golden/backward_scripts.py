# Scripts exported with --backward for the golden files (name: (root, code)).
SCRIPTS = {
    "bw_seed": ("y", "import torch\nx = torch.tensor([2.], requires_grad=True)\n"
                     "w = torch.tensor([1.], requires_grad=True)\na = torch.add(w, x)\n"
                     "b = torch.add(w, 1)\ny = torch.mul(a, b)\n"),
    "bw_vector": ("y", "import torch\nx = torch.tensor([1., 2., float('inf')], requires_grad=True)\n"
                       "y = x * x\n"),
    "bw_module": ("loss", "import torch\nfrom torch import nn\nmodel = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))\n"
                          "inputs = torch.randn(5, 3)\nloss = model(inputs).pow(2).mean()\n"),
}
