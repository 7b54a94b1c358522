package collector

// MaxHeldFiles bounds the /proc files the collector keeps open from tick
// to tick (HeldFiles); cmd/hive leaves that many descriptors out of the
// HTTP connection budget.
const MaxHeldFiles = 512

// HeldFiles is how many /proc files (processes' stat, workers' io) the
// collector keeps open under
// an open-file limit of nofile: a sixteenth of it, at most MaxHeldFiles,
// none under 1024. A process past it is read by path, as before.
func HeldFiles(nofile uint64) int {
	if nofile < 1024 {
		return 0
	}
	return int(min(nofile/16, MaxHeldFiles))
}
