#!/bin/sh
# One prepared run on a GPU machine that has nvidia-smi and PyTorch but no
# Go: bin/hive and bin/gpucheck are built here (static, CGO_ENABLED=0) and
# carried. Everything it learns lands in $OUT (or ./gpu-out).
out=${OUT:-gpu-out}
mkdir -p "$out"
{
	echo "== $(date -u +%FT%TZ) $(uname -srm)"
	nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,persistence_mode --format=csv
	nvidia-smi --version
	python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'
	nproc; grep -m1 'model name' /proc/cpuinfo
	echo "pid 1: $(cat /proc/1/comm)"
} >"$out/env.txt" 2>&1
cat "$out/env.txt"
rm -rf /tmp/gc
bin/gpucheck -hive bin/hive -probe bench/gpucheck/gpu_probe.py -record -window "${WINDOW:-30s}" -out /tmp/gc 2>&1 | tee "$out/gpucheck.txt"
tail -n 30 /tmp/gc/hive.log
tar czf "$out/gc.tgz" -C /tmp gc
