package wire

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Device is one entry of the capabilities answer.
type Device struct {
	ID                string  `json:"id"`
	Name              string  `json:"name"`
	DeviceType        string  `json:"device_type"`        // "gpu" or "cpu"
	VRAMGB            *uint32 `json:"vram_gb"`            // floor(GiB); RAM for CPU-0
	ComputeCapability *string `json:"compute_capability"` // "8.6"; null for CPU
}

// Capabilities is the body of GET /capabilities and the reply on
// SubjectCapabilitiesGet.
type Capabilities struct {
	Devices []Device `json:"devices"`
	// Additive: how the hive reads its GPUs ("nvml", "smi", "none",
	// "replay:<dir>") and, where the source says, the driver and CUDA
	// versions; with NVML, which memory info call it uses ("v2", or "v1"
	// on a driver without v2, which counts the driver's reserved memory
	// as used).
	GPUSource     string `json:"gpu_source,omitempty"`
	DriverVersion string `json:"driver_version,omitempty"`
	CUDAVersion   string `json:"cuda_version,omitempty"`
	GPUMemoryInfo string `json:"gpu_memory_info,omitempty"`
}

// CapabilitiesRequest is the optional body of SubjectCapabilitiesGet: a
// JSON object with no fields defined. Every request gets the cached answer,
// detected again when it is at least 10 s old.
type CapabilitiesRequest struct{}

// QueenURL is a Queen address learnt at run time, the request on
// SubjectDiscoveryQueen. Authorized says the HTTP client may change the
// hive's state (a valid token, or loopback without one); an unauthorized
// request succeeds only if it names the Queen already in use.
type QueenURL struct {
	URL        string `json:"url"`
	Authorized bool   `json:"authorized,omitempty"`
}

// QueenAccepted answers SubjectDiscoveryQueen: "started" when a discovery
// loop toward URL now runs, "unchanged" when it already did.
type QueenAccepted struct {
	URL    string `json:"url"`
	Status string `json:"status"`
}

// HiveHeartbeat is the legacy push body POSTed to {queen}/v1/hive-heartbeat.
// Capabilities is present only on discovery attempts.
type HiveHeartbeat struct {
	Hive         HiveInfo       `json:"hive"`
	Timestamp    string         `json:"timestamp"` // RFC 3339, "Z"
	Workers      []ProcessStats `json:"workers"`
	Node         *Node          `json:"node,omitempty"` // additive: the machine, as in the telemetry event
	Capabilities []Device       `json:"capabilities,omitempty"`
}

// HiveReady is the body POSTed to {queen}/v1/hive/ready by newer Queens.
type HiveReady struct {
	HiveID  string `json:"hive_id"`
	HiveURL string `json:"hive_url"`
}

// ValidateQueenURL accepts an absolute http(s) URL with a host, the only
// form a Queen address may take on any input (flag, HTTP query, bus).
func ValidateQueenURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid queen_url %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("invalid queen_url %q: scheme must be http or https", s)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("invalid queen_url %q: no host", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid queen_url %q: port must be 1-65535", s)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("invalid queen_url %q: empty port", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("invalid queen_url %q: no query, fragment or user info allowed", s)
	}
	return nil
}

// JoinURL appends path to a base URL without doubling the slash:
// JoinURL("http://q:7833/", "/v1/hive/ready") is "http://q:7833/v1/hive/ready".
func JoinURL(base, path string) string {
	return strings.TrimRight(base, "/") + "/" + strings.TrimLeft(path, "/")
}
