#!/bin/sh
# One prepared run on a GPU machine that has nvidia-smi and PyTorch but no
# Go: bin/hive (with cgo, so that it can load the driver's NVML) and
# bin/gpucheck are built here and carried. The check runs twice, once per
# GPU source, so that NVML and nvidia-smi are compared on the same card:
# the same checks must pass, and the cost lines put the two side by side.
# Everything it learns lands in $OUT (or ./gpu-out).
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
for src in nvml smi; do
	rm -rf "/tmp/gc-$src"
	bin/gpucheck -hive bin/hive -source "$src" -probe bench/gpucheck/gpu_probe.py -record -window "${WINDOW:-30s}" -out "/tmp/gc-$src" 2>&1 | tee "$out/gpucheck-$src.txt"
	tail -n 30 "/tmp/gc-$src/hive.log"
done
tar czf "$out/gc.tgz" -C /tmp gc-nvml gc-smi
