//go:build cgo

package nvml

import (
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Memory info versions (Info.Memory): v2 tells the driver's reserved
// memory apart from what processes use, as nvidia-smi's memory.used does;
// v1 counts it as used (615 MiB more on an H200 with driver 580).
const (
	MemoryV1 = "v1"
	MemoryV2 = "v2"
)

// hasSymbol reports whether the loaded library has name: calling a
// function the installed driver lacks kills the process (go-nvml binds
// lazily), so newer calls are made only where the symbol is there.
func hasSymbol(lib gonvml.Interface, name string) bool {
	ext, ok := lib.(interface {
		Extensions() gonvml.ExtendedInterface
	})
	return ok && ext.Extensions().LookupSymbol(name) == nil
}

// readMemory fills d's memory figures, through v2 when the driver has it.
// ret is v1's or v2's answer.
func (r *Reader) readMemory(h handle, d *Device) gonvml.Return {
	if r.info.Memory == MemoryV2 {
		m, ret := h.dev.GetMemoryInfo_v2()
		if ret == gonvml.SUCCESS {
			d.MemTotalMiB, d.MemUsedMiB = m.Total>>20, m.Used>>20
			d.MemReservedMiB, d.MemFreeMiB, d.Has = m.Reserved>>20, m.Free>>20, d.Has|HasReserved|HasFree
		}
		return ret
	}
	m, ret := h.dev.GetMemoryInfo()
	if ret == gonvml.SUCCESS {
		d.MemTotalMiB, d.MemUsedMiB, d.MemFreeMiB, d.Has = m.Total>>20, m.Used>>20, m.Free>>20, d.Has|HasFree
	}
	return ret
}
