package workerproc

import "strings"

// DefaultCgroupRoot is the original daemon's cgroup v2 tree of workers
// (<group>/<instance>), where the collector looks and jobs places them.
const DefaultCgroupRoot = "/sys/fs/cgroup/rbee.slice"

// Arg returns the value of --name or --name=value in a worker's command
// line. Workers are started with --worker-id, --model, --device, --port
// and --queen-url (jobs spawns them so); the collector and jobs read them
// back with this one function.
func Arg(args []string, name string) (string, bool) {
	long := "--" + name
	for i, a := range args {
		if a == long && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, long+"="); ok {
			return v, true
		}
	}
	return "", false
}
