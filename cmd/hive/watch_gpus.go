package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/rbee/hive/bus/wire"
)

// gpuShare is a worker's GPU% as the table shows it: "-" where the
// driver had no sample of it (its 0 is no measurement), "~N" where it is
// the device's figure, not the worker's own.
func gpuShare(p wire.ProcessStats) string {
	switch p.GPUUtilSource {
	case wire.GPUNoSample:
		return "-"
	case wire.GPUDevice:
		return fmt.Sprintf("~%.0f", float64(p.GPUUtilPct))
	}
	return fmt.Sprintf("%.0f", float64(p.GPUUtilPct))
}

// printHealth writes each hive's health and GPUs under the table: the
// figures the Queen schedules by; with --gpus, its headroom too.
func (t *table) printHealth(ids []string) {
	w := tabwriter.NewWriter(t.out, 0, 4, 2, ' ', 0)
	head := "\nHIVE\tHEALTH\tGPU\tNAME\tUTIL%\tVRAM MiB\tTEMP\tPOWER W\tGPU HEALTH"
	if t.gpus {
		head += "\tRESV MiB\tFREE MiB\tUNATTR%\tSM%\tOCC%\tTENSOR%\tDRAM BW%"
	}
	fmt.Fprintln(w, head)
	for _, id := range ids {
		ev := t.hives[id]
		health := safeText(ev.HiveInfo.HealthStatus.Status, 16)
		if r := ev.HiveInfo.HealthStatus.Reason; r != "" {
			health += ": " + safeText(r, 120)
		}
		if a := ev.HiveInfo.HealthStatus.Action; a != "" && a != wire.ActionNone {
			health += " (action: " + safeText(a, 32) + ")"
		}
		if len(ev.Node.GPUs) == 0 {
			fmt.Fprintf(w, "%s\t%s\t-\t(no GPU)\t\t\t\t\t\n", safeText(id, 64), health)
		}
		for _, g := range ev.Node.GPUs {
			temp, power := "-", "-"
			if g.TempC != nil {
				temp = fmt.Sprintf("%d C", *g.TempC)
			}
			if g.PowerW != nil && g.PowerLimitW != nil {
				power = fmt.Sprintf("%.0f/%.0f", float64(*g.PowerW), float64(*g.PowerLimitW))
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%.0f\t%d/%d\t%s\t%s\t%s", safeText(id, 64), health, g.Index, safeText(g.Name, 40),
				float64(g.UtilPct), g.VRAMUsedMB, g.VRAMTotalMB, temp, power, safeText(g.Health.Status, 16))
			if t.gpus {
				fmt.Fprint(w, headroom(g))
			}
			fmt.Fprintln(w)
			health = ""
		}
	}
	_ = w.Flush()
}

// headroom is a GPU's --gpus columns; "-" is a figure its reader does
// not have (v1 memory info, no GPM, nvidia-smi).
func headroom(g wire.NodeGPU) string {
	var b strings.Builder
	for _, v := range []*uint64{g.VRAMReservedMB, g.VRAMFreeMB} {
		if v == nil {
			b.WriteString("\t-")
		} else {
			fmt.Fprintf(&b, "\t%d", *v)
		}
	}
	for _, v := range []*wire.Float{g.UnattributedPct, g.SMActivePct, g.SMOccupancyPct, g.TensorActivePct, g.DRAMBWPct} {
		if v == nil {
			b.WriteString("\t-")
		} else {
			fmt.Fprintf(&b, "\t%.1f", float64(*v))
		}
	}
	return b.String()
}

// loadColumns are a worker's engine load columns (queue, running, KV %,
// generated tokens/s), "-" for a figure its engine does not give.
func loadColumns(l *wire.WorkerLoad) string {
	cols := []string{"-", "-", "-", "-"}
	if l != nil {
		if l.Queue != nil {
			cols[0] = fmt.Sprint(*l.Queue)
		}
		if l.Running != nil {
			cols[1] = fmt.Sprint(*l.Running)
		}
		if l.KVUsedRatio != nil {
			cols[2] = fmt.Sprintf("%.0f", 100*float64(*l.KVUsedRatio))
		}
		if l.GenTPS != nil {
			cols[3] = fmt.Sprintf("%.1f", float64(*l.GenTPS))
		}
	}
	return strings.Join(cols, "\t")
}
