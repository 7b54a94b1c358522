package capabilities

import (
	"errors"
	"fmt"
	"time"
)

// Config configures the module.
type Config struct {
	// Detector describes the GPUs; nil reads them with nvidia-smi.
	Detector Detector
	// MinRefresh is the shortest time between two detections.
	MinRefresh time.Duration
	// Timeout bounds one detection.
	Timeout time.Duration
	// Now is the clock; nil means time.Now. Tests replace it.
	Now func() time.Time
}

// DefaultConfig detects at most every 10 s, each detection within 5 s.
func DefaultConfig() Config {
	return Config{MinRefresh: 10 * time.Second, Timeout: 5 * time.Second}
}

// Validate reports every setting the module cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.MinRefresh < 0 {
		errs = append(errs, fmt.Errorf("capabilities: negative refresh interval %v", c.MinRefresh))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("capabilities: detection timeout %v must be positive", c.Timeout))
	}
	return errors.Join(errs...)
}
