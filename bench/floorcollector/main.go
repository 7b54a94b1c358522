// Command floorcollector is the floor the collector is measured against:
// the same job once a tick in plain Go, no JSON, no bus. List /proc, read
// every process's cmdline, match the pattern, read stat, statm and io of
// each match. It prints nothing; `make bench-collector` reads its CPU time.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

func main() {
	pattern := flag.String("match", "llm-worker", "regexp on command lines")
	interval := flag.Duration("interval", time.Second, "tick")
	flag.Parse()
	re := regexp.MustCompile(*pattern)
	self := strconv.Itoa(os.Getpid())
	sink := 0
	for t := time.NewTicker(*interval); ; <-t.C {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, e := range ents {
			name := e.Name()
			if name[0] < '0' || name[0] > '9' || name == self {
				continue
			}
			dir := filepath.Join("/proc", name)
			cmd, err := os.ReadFile(dir + "/cmdline")
			if err != nil || !re.Match(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})) {
				continue
			}
			for _, f := range []string{"/stat", "/statm", "/io"} {
				b, _ := os.ReadFile(dir + f)
				sink += len(bytes.Fields(b))
			}
		}
		_ = sink
	}
}
