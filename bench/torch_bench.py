"""PyTorch side of bench/run.ts: reads a JSON list of cases on stdin, prints
{"version", "results": {name: {mode: median_ms}}} on stdout. One thread.

Layouts: PyTorch's layers are channels-first, so channels-last rows ('cl') run
on the channels-first twin of the same tensor (same element count).
RMSNorm: torch 1.13 has no nn.RMSNorm; it is composed from ops (autograd).
bench/run.ts runs this with glibc's mmap and trim thresholds raised (see
torchResults there): without them PyTorch's times vary 2-6x between processes.
"""
import json
import statistics
import sys
import time

import torch

torch.set_num_threads(1)


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps=torch.finfo(torch.float32).eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make(c):
    shape = list(c["shape"])
    layer = c["layer"]
    if layer in ("LayerNorm", "RMSNorm"):
        d = shape[-1]
        m = torch.nn.LayerNorm(d) if layer == "LayerNorm" else RMSNorm(d)
        return m, shape, lambda: torch.nn.Sequential(m, Mean((1,)), torch.nn.Linear(d, 1))
    if c.get("layout") == "cl":  # channels-first twin
        shape = [shape[0], shape[-1]] + shape[1:-1]
    C = shape[1]
    if layer == "BatchNorm":
        m = torch.nn.BatchNorm2d(C)
    elif layer == "InstanceNorm":
        m = torch.nn.InstanceNorm2d(C, affine=True, track_running_stats=True)
    elif layer == "GroupNorm":
        m = torch.nn.GroupNorm(c["groups"], C)
    elif layer == "LocalResponseNorm":
        m = torch.nn.LocalResponseNorm(c["size"])
    else:
        raise ValueError(layer)
    return m, shape, lambda: torch.nn.Sequential(m, Mean((2, 3)), torch.nn.Linear(C, 1))


class Mean(torch.nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.mean(self.dims)


def median_ms(fn, runs):
    fn()
    times = []
    t0 = time.perf_counter()
    while len(times) < runs or (len(times) < 50 and time.perf_counter() - t0 < 2):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench(c):
    m, shape, model_fn = make(c)
    runs = c.get("runs", 10)
    x = torch.randn(shape) * 2 + 1
    dy = torch.randn(shape)
    out = {}

    def infer():
        m.eval()
        with torch.no_grad():
            m(x)

    def train_fwd():
        m.train()
        with torch.no_grad():
            m(x)

    def fwd_bwd():
        # The vector-Jacobian product with dy given, as bench/run.ts measures ours (not (y * dy).sum(),
        # whose product and its backward add two elementwise passes to the layer's own time).
        m.train()
        xg = x.detach().requires_grad_(True)
        m.zero_grad(set_to_none=True)
        m(xg).backward(dy)

    model = model_fn()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    target = torch.zeros(shape[0], 1)

    def fit():
        model.train()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), target).backward()
        opt.step()

    for name, fn in (("infer", infer), ("trainFwd", train_fwd), ("fwdBwd", fwd_bwd), ("fit", fit)):
        out[name] = median_ms(fn, runs)
    return out


def main():
    cases = json.load(sys.stdin)
    results = {c["name"]: bench(c) for c in cases}
    json.dump({"version": torch.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
