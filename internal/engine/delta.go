package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// String writes d as its setting takes it: "N,P%" (N requests or P
// percent), either alone, or "0" for no pushes.
func (d *Delta) String() string {
	var parts []string
	if d.Requests > 0 {
		parts = append(parts, strconv.FormatFloat(d.Requests, 'f', -1, 64))
	}
	if d.Ratio > 0 {
		parts = append(parts, strconv.FormatFloat(d.Ratio*100, 'f', -1, 64)+"%")
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ",")
}

// Set reads d from its String form.
func (d *Delta) Set(s string) error {
	var out Delta
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		pct, isPct := strings.CutSuffix(part, "%")
		v, err := strconv.ParseFloat(pct, 64)
		if err != nil || v < 0 || v > 1e6 {
			return fmt.Errorf("%q: want N requests and/or P%%, as in 4,25%%", s)
		}
		if isPct {
			out.Ratio = v / 100
		} else {
			out.Requests = v
		}
	}
	*d = out
	return nil
}
