package jobs

import (
	"errors"
	"testing"
)

// Any body either parses into a known hive operation or is rejected as an
// invalid operation (a 400); nothing panics and nothing else comes out.
func FuzzParseOperation(f *testing.F) {
	for _, seed := range []string{
		`{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"cpu","device":0}`,
		`{"operation":"worker_process_delete","hive_id":"h","pid":42}`,
		`{"operation":"model_get","hive_id":"h","id":"x"}`,
		`{"operation":"hive_check","alias":"a"}`,
		`{"operation":"infer"}`, `{"operation":null}`, `[]`, `"x"`, `{`, ``, `{"operation":"worker_spawn","device":1e99}`,
	} {
		f.Add([]byte(seed))
	}
	known := map[string]bool{
		"worker_spawn": true, "worker_process_list": true, "worker_process_get": true, "worker_process_delete": true,
		"model_list": true, "model_get": true, "model_delete": true, "model_download": true, "hive_check": true,
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		op, err := ParseOperation(body)
		if err != nil {
			if !errors.Is(err, errInvalid) {
				t.Fatalf("error %v does not map to 400", err)
			}
			return
		}
		if !known[op.Name] {
			t.Fatalf("accepted operation %q", op.Name)
		}
		if op.Name == "worker_spawn" && !workerTypes[op.Worker] {
			t.Fatalf("accepted worker %q", op.Worker)
		}
		if (op.Name == "worker_process_get" || op.Name == "worker_process_delete") && op.PID <= 0 {
			t.Fatalf("accepted pid %d", op.PID)
		}
	})
}
