package nvsmi

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Device is one GPU as the Devices query reports it.
type Device struct {
	Index       int
	UUID        string
	Name        string  // "" in a recording from before the name was asked
	UtilPct     float64 // -1 when the driver does not report it
	MemTotalMiB uint64
	MemUsedMiB  uint64
	MemFreeMiB  uint64
	HasFree     bool // MemFreeMiB was read
}

// App is a compute process holding memory on a GPU.
type App struct {
	PID     int32
	GPUUUID string
	UsedMiB uint64
}

// Cap is one GPU as the Caps query reports it.
type Cap struct {
	Index             int
	Name              string
	MemTotalMiB       uint64
	ComputeCapability string // "8.6"
}

// ParseDevices parses the output of Devices. A malformed line drops that
// GPU, not the others.
func ParseDevices(r io.Reader) ([]Device, error) {
	recs, err := readCSV(r, 5, 7)
	if err != nil {
		return nil, err
	}
	var out []Device
	for _, f := range recs {
		idx, err := strconv.Atoi(f[0])
		if err != nil || idx < 0 || f[1] == "" {
			continue
		}
		total, ok := parseMiB(f[3])
		if !ok {
			continue
		}
		used, _ := parseMiB(f[4])
		util := -1.0
		if v, err := strconv.ParseFloat(f[2], 64); err == nil && v >= 0 && v <= 100 {
			util = v
		}
		d := Device{Index: idx, UUID: f[1], UtilPct: util, MemTotalMiB: total, MemUsedMiB: used}
		if len(f) == 7 {
			if len(f[5]) <= 256 && !strings.ContainsRune(f[5], 0) {
				d.Name = f[5]
			}
			d.MemFreeMiB, d.HasFree = parseMiB(f[6])
		}
		out = append(out, d)
	}
	return out, nil
}

// ParseVersions reads the driver and CUDA versions from the report of Q
// ("Driver Version : 580.159.04", "CUDA Version : 13.0"); "" for one it
// lacks.
func ParseVersions(r io.Reader) (driver, cuda string) {
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for sc.Scan() && (driver == "" || cuda == "") {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if !version.MatchString(v) {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Driver Version":
			driver = v
		case "CUDA Version":
			cuda = v
		}
	}
	return driver, cuda
}

var version = regexp.MustCompile(`^\d{1,4}(\.\d{1,4}){1,3}$`)

// ParseApps parses the output of Apps. Empty output means no compute
// processes.
func ParseApps(r io.Reader) ([]App, error) {
	recs, err := readCSV(r, 3)
	if err != nil {
		return nil, err
	}
	var out []App
	for _, f := range recs {
		pid, err := strconv.ParseInt(f[0], 10, 32)
		if err != nil || pid <= 0 {
			continue
		}
		used, _ := parseMiB(f[2]) // "[N/A]" under some MIG/WDDM setups: 0 MiB known
		out = append(out, App{PID: int32(pid), GPUUUID: f[1], UsedMiB: used})
	}
	return out, nil
}

var computeCap = regexp.MustCompile(`^\d{1,2}\.\d{1,2}$`)

// ParseCaps parses the output of Caps. A malformed line drops that GPU
// only (the original dropped the whole list).
func ParseCaps(r io.Reader) ([]Cap, error) {
	recs, err := readCSV(r, 4)
	if err != nil {
		return nil, err
	}
	var out []Cap
	for _, f := range recs {
		idx, err := strconv.Atoi(f[0])
		if err != nil || idx < 0 || idx > 1024 {
			continue
		}
		mem, ok := parseMiB(f[2])
		if !ok || mem > 1_000_000 {
			continue
		}
		name := f[1]
		if name == "" || len(name) > 256 || strings.ContainsRune(name, 0) || !computeCap.MatchString(f[3]) {
			continue
		}
		out = append(out, Cap{Index: idx, Name: name, MemTotalMiB: mem, ComputeCapability: f[3]})
	}
	return out, nil
}

// readCSV returns the records that have exactly n fields, trimmed; others
// are skipped so one odd line cannot hide the rest.
func readCSV(r io.Reader, ns ...int) ([][]string, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	var out [][]string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			var perr *csv.ParseError
			if errors.As(err, &perr) {
				continue
			}
			return nil, fmt.Errorf("read nvidia-smi csv: %w", err)
		}
		if !slices.Contains(ns, len(rec)) {
			continue
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		out = append(out, rec)
	}
}

func parseMiB(s string) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > 10_000_000 {
		return 0, false
	}
	return v, true
}
