"""A real GPU worker for `make gpu-check`.

Run as `python3 gpu_probe.py llm-worker --model gpu-probe --port 9400` so
the hive matches it by command line. It holds GPU_PROBE_MIB MiB of device
memory in one plain allocation and loads the GPU as the control file
(GPU_PROBE_CONTROL) says, read every 50 ms:

    busy      back-to-back bf16 matrix products
    duty N    matrix products for N % of each 100 ms window, idle the rest
    idle      no kernels, memory still held
    exit      free everything and exit

It prints one JSON line when ready: its pid and what PyTorch holds.
"""
import json
import os
import sys
import time

import torch

ctl = os.environ.get("GPU_PROBE_CONTROL", "")
mib = int(os.environ.get("GPU_PROBE_MIB", "4096"))
n = int(os.environ.get("GPU_PROBE_N", "4096"))

dev = torch.device("cuda")
hold = torch.ones(mib << 20, dtype=torch.uint8, device=dev)
a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
c = a @ b
torch.cuda.synchronize()
print(json.dumps({
    "ready": True,
    "pid": os.getpid(),
    "held_mib": mib,
    "torch_reserved_mib": torch.cuda.memory_reserved() >> 20,
    "device": torch.cuda.get_device_name(0),
    "torch": torch.__version__,
}), flush=True)


def mode():
    try:
        with open(ctl) as f:
            return f.read().split() or ["busy"]
    except OSError:
        return ["busy"]


last_read, m = 0.0, ["busy"]
while True:
    now = time.monotonic()
    if now - last_read >= 0.05:
        m, last_read = mode(), now
    if m[0] == "exit":
        break
    if m[0] == "idle":
        time.sleep(0.05)
    elif m[0] == "duty":
        frac = min(max(float(m[1]) / 100, 0.0), 1.0)
        start = time.monotonic()
        while time.monotonic() - start < 0.1 * frac:
            torch.matmul(a, b, out=c)
            torch.cuda.synchronize()
        rest = 0.1 - (time.monotonic() - start)
        if rest > 0:
            time.sleep(rest)
    else:
        for _ in range(8):
            torch.matmul(a, b, out=c)
        torch.cuda.synchronize()

del hold, a, b, c
torch.cuda.empty_cache()
sys.exit(0)
