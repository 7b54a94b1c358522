package capabilities

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// GPU is one detected GPU.
type GPU struct {
	Index             int
	Name              string
	MemTotalMiB       uint64
	ComputeCapability string // "8.6"
}

// Detector lists the host's GPUs. A host without GPUs returns nil, nil.
type Detector interface {
	DetectGPUs(ctx context.Context) ([]GPU, error)
}

// SMIQueryArgs is the nvidia-smi query the SMI detector runs; recorded
// output of exactly this command replays through Replay.
var SMIQueryArgs = []string{"--query-gpu=index,name,memory.total,compute_cap", "--format=csv,noheader,nounits"}

// SMI detects GPUs with nvidia-smi. A missing binary means no GPU.
type SMI struct {
	Path string // "" looks nvidia-smi up in PATH
}

// DetectGPUs implements Detector.
func (s SMI) DetectGPUs(ctx context.Context) ([]GPU, error) {
	path := s.Path
	if path == "" {
		p, err := exec.LookPath("nvidia-smi")
		if err != nil {
			return nil, nil
		}
		path = p
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, SMIQueryArgs...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) || errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("nvidia-smi: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return ParseGPUs(bytes.NewReader(out))
}

// Replay reads recorded nvidia-smi output (of SMIQueryArgs) from File on
// every call; a missing file is a host without GPUs.
type Replay struct {
	File string
}

// DetectGPUs implements Detector.
func (r Replay) DetectGPUs(context.Context) ([]GPU, error) {
	b, err := os.ReadFile(r.File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return ParseGPUs(bytes.NewReader(b))
}

// None is the detector of a host without GPUs (or with GPU reading off).
type None struct{}

// DetectGPUs implements Detector.
func (None) DetectGPUs(context.Context) ([]GPU, error) { return nil, nil }

// NewDetector builds a detector from the --gpu-source form shared with the
// collector: auto|smi, none, replay:<dir> (reading <dir>/query-gpu-caps.csv).
func NewDetector(spec string) (Detector, error) {
	switch {
	case spec == "" || spec == "auto" || spec == "smi" || spec == "nvidia-smi":
		return SMI{}, nil
	case spec == "none":
		return None{}, nil
	case strings.HasPrefix(spec, "replay:") && len(spec) > len("replay:"):
		return Replay{File: filepath.Join(strings.TrimPrefix(spec, "replay:"), "query-gpu-caps.csv")}, nil
	}
	return nil, fmt.Errorf("capabilities: unknown GPU source %q", spec)
}

var computeCap = regexp.MustCompile(`^\d{1,2}\.\d{1,2}$`)

// ParseGPUs parses `nvidia-smi --query-gpu=index,name,memory.total,
// compute_cap --format=csv,noheader,nounits`. A malformed line drops that
// GPU only (the original dropped the whole list).
func ParseGPUs(r io.Reader) ([]GPU, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	var out []GPU
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse nvidia-smi: %w", err)
		}
		if len(rec) != 4 {
			continue
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		idx, err := strconv.Atoi(rec[0])
		if err != nil || idx < 0 || idx > 1024 {
			continue
		}
		mem, err := strconv.ParseUint(rec[2], 10, 64)
		if err != nil || mem > 1_000_000 {
			continue
		}
		name := rec[1]
		if name == "" || len(name) > 256 || strings.ContainsRune(name, 0) {
			continue
		}
		if !computeCap.MatchString(rec[3]) {
			continue
		}
		out = append(out, GPU{Index: idx, Name: name, MemTotalMiB: mem, ComputeCapability: rec[3]})
	}
}
