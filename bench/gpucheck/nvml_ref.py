"""NVML's own view of the GPU, recorded by `gpucheck -record` beside
nvidia-smi's: per-process utilisation samples, compute processes and
device utilisation. A reference only; the hive does not use it."""
import json

import pynvml as n

n.nvmlInit()
out = {"driver": n.nvmlSystemGetDriverVersion(), "devices": []}
for i in range(n.nvmlDeviceGetCount()):
    h = n.nvmlDeviceGetHandleByIndex(i)
    d = {"index": i}
    try:
        u = n.nvmlDeviceGetUtilizationRates(h)
        d["util"] = {"gpu": u.gpu, "memory": u.memory}
    except n.NVMLError as e:
        d["util"] = str(e)
    try:
        d["procs"] = [{"pid": p.pid, "used_mib": (p.usedGpuMemory or 0) >> 20} for p in n.nvmlDeviceGetComputeRunningProcesses(h)]
    except n.NVMLError as e:
        d["procs"] = str(e)
    try:
        d["proc_util"] = [{"pid": s.pid, "sm": s.smUtil, "mem": s.memUtil, "ts": s.timeStamp} for s in n.nvmlDeviceGetProcessUtilization(h, 0)]
    except n.NVMLError as e:
        d["proc_util"] = str(e)
    out["devices"].append(d)
print(json.dumps(out, indent=1))
