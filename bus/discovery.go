package bus

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
}

// CapabilitiesRequest asks for a fresh detection when Refresh is set
// (rate-limited by the capabilities module).
type CapabilitiesRequest struct {
	Refresh bool `json:"refresh,omitempty"`
}

// QueenURL is a Queen address learnt at run time.
type QueenURL struct {
	URL string `json:"url"`
}

// HiveHeartbeat is the legacy push body POSTed to {queen}/v1/hive-heartbeat.
// Capabilities is present only on discovery attempts.
type HiveHeartbeat struct {
	Hive         HiveInfo       `json:"hive"`
	Timestamp    string         `json:"timestamp"` // RFC 3339, "Z"
	Workers      []ProcessStats `json:"workers"`
	Capabilities []Device       `json:"capabilities,omitempty"`
}

// HiveReady is the body POSTed to {queen}/v1/hive/ready by newer Queens.
type HiveReady struct {
	HiveID  string `json:"hive_id"`
	HiveURL string `json:"hive_url"`
}

// ErrorReply is the body of a failed request/reply exchange. Status is the
// HTTP status the gateway should answer with.
type ErrorReply struct {
	Error      string `json:"error"`
	Status     int    `json:"status"`
	RetryAfter int    `json:"retry_after,omitempty"` // seconds
}
