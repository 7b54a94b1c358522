package xid

import (
	"os"
	"strings"
	"testing"

	"github.com/rbee/hive/bus/wire"
)

// Every code of the catalogue has a bucket with a policy of its own (none
// falls to the default by a missing row), an action of the documented
// five, and docs/GPUS.md's table names its bucket.
func TestEveryCodeHasADocumentedAction(t *testing.T) {
	doc, err := os.ReadFile("../../docs/GPUS.md")
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{wire.ActionNone: true, wire.ActionRestartApp: true, wire.ActionResetGPU: true,
		wire.ActionReboot: true, wire.ActionHardwareInspection: true}
	codes := Codes()
	if len(codes) != 172 {
		t.Errorf("%d codes, want the catalogue's 172", len(codes))
	}
	for _, c := range codes {
		e, ok := Lookup(c)
		if !ok || e.Code != c || e.Mnemonic == "" {
			t.Errorf("code %d: %+v %v", c, e, ok)
			continue
		}
		if _, ok := policies[e.Bucket]; !ok {
			t.Errorf("code %d: bucket %q has no policy", c, e.Bucket)
		}
		p := e.Policy()
		if !actions[p.Action] || p.Health == "" {
			t.Errorf("code %d: policy %+v", c, p)
		}
		row := "| `" + e.Bucket + "` |"
		if e.Bucket == "" {
			row = "| (none) |"
		}
		if !strings.Contains(string(doc), row) {
			t.Errorf("code %d: docs/GPUS.md has no row %q", c, row)
		}
	}
}

func TestKnownCodes(t *testing.T) {
	for _, c := range []struct {
		code        uint64
		health, act string
		app, sticky bool
	}{
		{13, wire.HealthHealthy, wire.ActionRestartApp, true, false},
		{31, wire.HealthHealthy, wire.ActionRestartApp, true, false},
		{43, wire.HealthHealthy, wire.ActionNone, false, false},
		{45, wire.HealthHealthy, wire.ActionRestartApp, true, false},
		{48, wire.HealthUnhealthy, wire.ActionResetGPU, false, true},
		{63, wire.HealthHealthy, wire.ActionNone, false, false},
		{74, wire.HealthDegraded, wire.ActionResetGPU, false, false},
		{79, wire.HealthUnhealthy, wire.ActionReboot, false, true},
		{94, wire.HealthHealthy, wire.ActionRestartApp, true, false},
		{95, wire.HealthUnhealthy, wire.ActionResetGPU, false, true},
		{119, wire.HealthUnhealthy, wire.ActionResetGPU, false, true},
		{145, wire.HealthDegraded, wire.ActionResetGPU, false, false},
		{154, wire.HealthHealthy, wire.ActionNone, false, false},
	} {
		e, _ := Lookup(c.code)
		if p := e.Policy(); p.Health != c.health || p.Action != c.act || e.Application() != c.app || e.Sticky() != c.sticky {
			t.Errorf("%d (%s, %s): %+v app %v sticky %v", c.code, e.Mnemonic, e.Bucket, p, e.Application(), e.Sticky())
		}
	}
	if e, ok := Lookup(9999); ok || e.Policy() != (Policy{wire.HealthDegraded, wire.ActionNone}) {
		t.Errorf("an unknown code: %+v %v", e, ok)
	}
}
