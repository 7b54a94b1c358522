package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Operation is a parsed, validated job request.
type Operation struct {
	Name    string
	HiveID  string
	Model   string // worker_spawn
	Worker  string // worker_spawn: cpu, cuda, metal
	Device  uint32 // worker_spawn
	PID     int    // worker_process_get/delete
	ModelID string // model_get/delete
	Alias   string // hive_check
}

// queenOperations belong to the Queen; a hive rejects them by name.
var queenOperations = map[string]bool{
	"status": true, "infer": true, "queen_check": true,
	"rhai_script_save": true, "rhai_script_test": true, "rhai_script_get": true,
	"rhai_script_delete": true, "rhai_script_list": true,
}

// workerTypes are the worker binaries a hive can spawn.
var workerTypes = map[string]bool{"cpu": true, "cuda": true, "metal": true}

// errInvalid marks a request that is well-formed JSON but not a valid
// operation: the gateway answers 400.
var errInvalid = errors.New("invalid operation")

// ParseOperation decodes and validates an operation body. Unknown fields
// are ignored, as the original's serde did.
func ParseOperation(body []byte) (Operation, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return Operation{}, fmt.Errorf("%w: body must be a JSON object: %v", errInvalid, err)
	}
	var name string
	if err := field(raw, "operation", &name, true); err != nil {
		return Operation{}, err
	}
	op := Operation{Name: name}
	if queenOperations[name] {
		return op, fmt.Errorf("%w: operation %q belongs to the Queen, not to a hive; send it to queen-rbee", errInvalid, name)
	}
	need := func(fields ...string) error {
		for _, f := range fields {
			var err error
			switch f {
			case "hive_id":
				err = field(raw, f, &op.HiveID, true)
			case "model":
				err = field(raw, f, &op.Model, true)
			case "worker":
				err = field(raw, f, &op.Worker, true)
			case "device":
				err = field(raw, f, &op.Device, true)
			case "pid":
				var pid uint32
				err = field(raw, f, &pid, true)
				if err == nil && (pid == 0 || pid > 1<<22) {
					err = fmt.Errorf("%w: pid %d out of range", errInvalid, pid)
				}
				op.PID = int(pid)
			case "id":
				err = field(raw, f, &op.ModelID, true)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	switch name {
	case "worker_spawn":
		err = need("hive_id", "model", "worker", "device")
		if err == nil && !workerTypes[op.Worker] {
			err = fmt.Errorf("%w: unsupported worker type %q (want cpu, cuda or metal)", errInvalid, op.Worker)
		}
		if err == nil && strings.TrimSpace(op.Model) == "" {
			err = fmt.Errorf("%w: empty model", errInvalid)
		}
	case "worker_process_list", "model_list":
		err = need("hive_id")
	case "worker_process_get", "worker_process_delete":
		err = need("hive_id", "pid")
	case "model_get", "model_delete":
		err = need("hive_id", "id")
	case "model_download":
		err = need("hive_id", "model")
	case "hive_check":
		op.Alias = "localhost"
		err = field(raw, "alias", &op.Alias, false)
	case "worker_install", "model_load", "model_unload":
		err = fmt.Errorf("%w: operation %q is not supported by this hive", errInvalid, name)
	default:
		err = fmt.Errorf("%w: unknown operation %q", errInvalid, name)
	}
	return op, err
}

// field decodes raw[name] into dst. A missing required field, a null or a
// value of the wrong type is an invalid operation.
func field(raw map[string]json.RawMessage, name string, dst any, required bool) error {
	v, ok := raw[name]
	if !ok || string(v) == "null" {
		if required {
			return fmt.Errorf("%w: missing field %q", errInvalid, name)
		}
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("%w: field %q: want %s, got %s", errInvalid, name, kind(dst), truncate(string(v), 40))
	}
	return nil
}

func kind(dst any) string {
	switch dst.(type) {
	case *string:
		return "a string"
	case *uint32:
		return "a non-negative integer"
	}
	return "another type"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
