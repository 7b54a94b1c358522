package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/rbee/hive/internal/logtee"
)

// workerLog is `hive worker-log`: what the hive starts beside each worker
// it spawns, on a pipe from the worker's stdout and stderr, to keep its
// log within --max-log-bytes as it is written (internal/logtee). It is
// not meant to be run by hand.
func workerLog(args []string, stdin io.Reader, stderr io.Writer) int {
	fs := flag.NewFlagSet("hive worker-log", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "the log file")
	max := fs.Int64("max-bytes", 64<<20, "rotate to <file>.1 past this many bytes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "hive worker-log: --file is required")
		return 2
	}
	if err := logtee.Copy(stdin, *file, *max); err != nil {
		fmt.Fprintln(stderr, "hive worker-log:", err)
		// Keep the pipe drained: a worker whose log cannot be written must
		// not block on a full pipe, nor die of SIGPIPE.
		_, _ = io.Copy(io.Discard, stdin)
		return 1
	}
	return 0
}
