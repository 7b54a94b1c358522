// Package xid is NVIDIA's Xid catalogue as data (catalog.tsv, generated
// into catalog_gen.go) and what the hive makes of each code: the GPU's
// health and the action an operator or the Queen should take.
package xid

//go:generate go run gen.go

import (
	"sort"

	"github.com/rbee/hive/bus/wire"
)

// Entry is one code of the catalogue.
type Entry struct {
	Code          uint64
	Mnemonic      string
	Description   string
	Bucket        string // NVIDIA's immediate resolution bucket
	Investigatory string // NVIDIA's investigatory resolution bucket
}

// Policy is what a resolution bucket means for the GPU: its health while
// the Xid holds, and the action that ends it.
type Policy struct {
	Health string // wire.Health*
	Action string // wire.Action*
}

// policies maps NVIDIA's immediate buckets to health and action. A
// RESTART_APP Xid is the application's fault: the GPU stays healthy (and
// the worker whose pid the kernel names is "failed"). The WORKFLOW_
// buckets follow NVIDIA's workflows: 45 is a sympathetic cleanup after
// another error, 48 (a double-bit ECC error) asks for a reset, NVLink
// errors degrade the GPU until a reset. Codes the catalogue leaves
// without a bucket degrade without an action.
var policies = map[string]Policy{
	"RESTART_APP":          {wire.HealthHealthy, wire.ActionRestartApp},
	"WORKFLOW_XID_45":      {wire.HealthHealthy, wire.ActionRestartApp},
	"IGNORE":               {wire.HealthHealthy, wire.ActionNone},
	"XID_154":              {wire.HealthHealthy, wire.ActionNone},
	"RESET_GPU":            {wire.HealthUnhealthy, wire.ActionResetGPU},
	"WORKFLOW_XID_48":      {wire.HealthUnhealthy, wire.ActionResetGPU},
	"WORKFLOW_NVLINK_ERR":  {wire.HealthDegraded, wire.ActionResetGPU},
	"WORKFLOW_NVLINK5_ERR": {wire.HealthDegraded, wire.ActionResetGPU},
	"RESTART_BM":           {wire.HealthUnhealthy, wire.ActionReboot},
	"RESTART_VM":           {wire.HealthUnhealthy, wire.ActionReboot},
	"CHECK_MECHANICALS":    {wire.HealthUnhealthy, wire.ActionHardwareInspection},
	"CONTACT_SUPPORT":      {wire.HealthDegraded, wire.ActionHardwareInspection},
	"UPDATE_SWFW":          {wire.HealthDegraded, wire.ActionNone},
	"CHECK_UVM":            {wire.HealthDegraded, wire.ActionNone},
	"":                     {wire.HealthDegraded, wire.ActionNone},
}

// Lookup returns the catalogue's entry for code; ok is false for a code
// the catalogue does not list (its policy is then the empty bucket's).
func Lookup(code uint64) (Entry, bool) {
	i := sort.Search(len(catalog), func(i int) bool { return catalog[i].Code >= code })
	if i < len(catalog) && catalog[i].Code == code {
		return catalog[i], true
	}
	return Entry{Code: code}, false
}

// Policy is what the entry's bucket means for the GPU.
func (e Entry) Policy() Policy {
	if p, ok := policies[e.Bucket]; ok {
		return p
	}
	return policies[""]
}

// Application reports whether the Xid is the application's fault: the
// process the kernel names failed, not the GPU.
func (e Entry) Application() bool { return e.Policy().Action == wire.ActionRestartApp }

// Sticky reports whether the Xid holds until the GPU is reset or the
// machine rebooted (its action is one of those, or an inspection).
func (e Entry) Sticky() bool {
	p := e.Policy()
	return p.Health == wire.HealthUnhealthy
}

// Codes are every code of the catalogue, in order.
func Codes() []uint64 {
	out := make([]uint64, len(catalog))
	for i, e := range catalog {
		out[i] = e.Code
	}
	return out
}
