#!/bin/sh
# The GPU image's runtime against a real driver, on a GPU machine without
# Docker: .gpuroot holds what deployments/Dockerfile.gpu puts in the image
# (the static hive and the build host's glibc runtime). The driver's
# nvidia-smi and libnvidia-ml are bind-mounted into it where the NVIDIA
# container runtime mounts them, and the hive runs chrooted in it as the
# image's user, under gpucheck, beside a real PyTorch worker on the host.
set -u
out=${OUT:-gpu-out}
R=$(pwd)/.gpuroot
mkdir -p "$out"
smi=$(command -v nvidia-smi)
nvml=$(ldconfig -p | awk '/libnvidia-ml.so.1 /{print $NF; exit}')
{
	echo "nvidia-smi: $smi"; ldd "$smi"
	echo "libnvidia-ml: $nvml"; ldd "$nvml"
} 2>&1 | tee "$out/ldd.txt"
mkdir -p "$R/usr/bin" "$R/usr/lib/x86_64-linux-gnu" "$R/data/models" "$R/data/logs" "$R/workers"
chown -R 65532:65532 "$R/data"
touch "$R/usr/bin/nvidia-smi" "$R/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"
mount --bind "$smi" "$R/usr/bin/nvidia-smi"
mount --bind "$nvml" "$R/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount --rbind /sys "$R/sys"
echo "== nvidia-smi -L inside the image's rootfs, as uid 65532"
chroot --userspec=65532:65532 "$R" /usr/bin/nvidia-smi -L 2>&1 | tee "$out/chroot-smi.txt"
cat >/tmp/hive-in-image <<EOS
#!/bin/sh
exec env HOME=/data HIVE_WORKER_DIR=/workers HIVE_MODEL_DIR=/data/models HIVE_WORKER_LOG_DIR=/data/logs \\
	chroot --userspec=65532:65532 "$R" /hive "\$@"
EOS
chmod +x /tmp/hive-in-image
bin/gpucheck -hive /tmp/hive-in-image -probe bench/gpucheck/gpu_probe.py -window "${WINDOW:-10s}" -out /tmp/gci 2>&1 | tee "$out/gpucheck-image.txt"
cp /tmp/gci/hive.log "$out/hive-image.log" 2>/dev/null
umount -l "$R/sys" "$R/dev" "$R/proc" "$R/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1" "$R/usr/bin/nvidia-smi" 2>/dev/null
true
