package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/text"
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
var errInvalid = &bus.ReplyError{Code: wire.CodeInvalid, Msg: "invalid operation"}

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
	if err := op.fill(raw); err != nil {
		return op, err
	}
	return op, op.validate()
}

// operation is one operation this hive runs: the fields it must carry
// and its handler. Adding an operation is an entry here and its handler.
type operation struct {
	need []string
	run  func(m *Jobs, ctx context.Context, n *narrator, op Operation) error
}

// operations are the operations this hive runs.
var operations = map[string]operation{
	"worker_spawn": {[]string{"hive_id", "model", "worker", "device"}, (*Jobs).spawnWorker},
	"worker_process_list": {[]string{"hive_id"}, func(m *Jobs, ctx context.Context, n *narrator, _ Operation) error {
		return m.listWorkers(ctx, n)
	}},
	"worker_process_get": {[]string{"hive_id", "pid"}, func(m *Jobs, ctx context.Context, n *narrator, op Operation) error {
		return m.getWorker(ctx, n, op.PID)
	}},
	"worker_process_delete": {[]string{"hive_id", "pid"}, func(m *Jobs, ctx context.Context, n *narrator, op Operation) error {
		return m.deleteWorker(ctx, n, op.PID)
	}},
	"model_list": {[]string{"hive_id"}, func(m *Jobs, _ context.Context, n *narrator, _ Operation) error { return m.listModels(n) }},
	"model_get": {[]string{"hive_id", "id"}, func(m *Jobs, _ context.Context, n *narrator, op Operation) error {
		return m.getModel(n, op.ModelID)
	}},
	"model_delete": {[]string{"hive_id", "id"}, func(m *Jobs, _ context.Context, n *narrator, op Operation) error {
		return m.deleteModel(n, op.ModelID)
	}},
	"model_download": {[]string{"hive_id", "model"}, func(m *Jobs, _ context.Context, _ *narrator, _ Operation) error {
		return fmt.Errorf("model_download is not supported by this hive: put model files into %s yourself", m.cfg.ModelDir)
	}},
	"hive_check": {nil, func(m *Jobs, ctx context.Context, n *narrator, _ Operation) error { return m.hiveCheck(ctx, n) }},
}

// fill decodes the fields op.Name requires, and its optional ones.
func (op *Operation) fill(raw map[string]json.RawMessage) error {
	o, ok := operations[op.Name]
	switch {
	case op.Name == "worker_install" || op.Name == "model_load" || op.Name == "model_unload":
		return fmt.Errorf("%w: operation %q is not supported by this hive", errInvalid, op.Name)
	case !ok:
		return fmt.Errorf("%w: unknown operation %q", errInvalid, op.Name)
	}
	for _, f := range o.need {
		if err := op.need(raw, f); err != nil {
			return err
		}
	}
	switch op.Name {
	case "worker_spawn":
		if !workerTypes[op.Worker] {
			return fmt.Errorf("%w: unsupported worker type %q (want cpu, cuda or metal)", errInvalid, op.Worker)
		}
		if strings.TrimSpace(op.Model) == "" {
			return fmt.Errorf("%w: empty model", errInvalid)
		}
	case "hive_check":
		op.Alias = "localhost"
		return field(raw, "alias", &op.Alias, false)
	}
	return nil
}

// need decodes required field f into op.
func (op *Operation) need(raw map[string]json.RawMessage, f string) error {
	switch f {
	case "hive_id":
		return field(raw, f, &op.HiveID, true)
	case "model":
		return field(raw, f, &op.Model, true)
	case "worker":
		return field(raw, f, &op.Worker, true)
	case "device":
		return field(raw, f, &op.Device, true)
	case "id":
		return field(raw, f, &op.ModelID, true)
	case "pid":
		var pid uint32
		if err := field(raw, f, &pid, true); err != nil {
			return err
		}
		if pid == 0 || pid > 1<<22 {
			return fmt.Errorf("%w: pid %d out of range", errInvalid, pid)
		}
		op.PID = int(pid)
		return nil
	}
	return fmt.Errorf("jobs: no decoder for field %q", f)
}

// Field rules, checked at submit so that a bad value is a 400 and never
// reaches a command line, a file name, a subject or an SSE frame.
var (
	// hive ids and aliases: host-name-like.
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	// model references: Hugging Face ids, tags and revisions
	// (org/name, name:Q4_K_M, name@rev); never starting with '-', so never
	// a flag on the worker's command line.
	modelPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,255}$`)
)

// maxModelFile bounds a model file name (NAME_MAX).
const maxModelFile = 255

func (op Operation) validate() error {
	check := func(field, v string, re *regexp.Regexp) error {
		if v != "" && !re.MatchString(v) {
			return fmt.Errorf("%w: field %q: %s does not match %s", errInvalid, field, strconv.Quote(text.Truncate(v, 40)), re)
		}
		return nil
	}
	if err := check("hive_id", op.HiveID, namePattern); err != nil {
		return err
	}
	if err := check("alias", op.Alias, namePattern); err != nil {
		return err
	}
	if err := check("model", op.Model, modelPattern); err != nil {
		return err
	}
	if op.ModelID != "" {
		// A file directly in the model directory: no path, no hidden
		// file, no control character.
		if len(op.ModelID) > maxModelFile || strings.HasPrefix(op.ModelID, ".") || strings.HasPrefix(op.ModelID, "-") ||
			strings.ContainsAny(op.ModelID, `/\`) || !utf8.ValidString(op.ModelID) || strings.IndexFunc(op.ModelID, unicode.IsControl) >= 0 {
			return fmt.Errorf("%w: field \"id\": %s is not a model file name (at most %d bytes, no '/', no control characters, not hidden)",
				errInvalid, strconv.Quote(text.Truncate(op.ModelID, 40)), maxModelFile)
		}
	}
	return nil
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
		return fmt.Errorf("%w: field %q: want %s, got %s", errInvalid, name, kind(dst), text.Truncate(string(v), 40))
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
