package collector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/rbee/hive/bus/wire"
)

// Bounds of the sticky store: boots remembered per GPU and Xid, GPUs kept,
// the file's size.
const (
	maxBootsPerXID = 8
	maxStickyGPUs  = 64
	maxStickyBytes = 1 << 20
	// escalateAfter: the same sticky Xid in this many boots (it came back
	// after two reboots) asks for a hardware inspection.
	escalateAfter = 3
)

// stickyFile is what the store keeps in HealthState.
type stickyFile struct {
	Boot string                `json:"boot_id"`
	GPUs map[string]*stickyGPU `json:"gpus"` // by UUID
}

// stickyGPU is one GPU's sticky Xid of this boot, if any, and the boots
// each sticky Xid was seen in.
type stickyGPU struct {
	Active uint64              `json:"active,omitempty"`
	Action string              `json:"action,omitempty"`
	Boots  map[string][]string `json:"boots"` // Xid code -> boot ids
}

// stickyStore keeps reset- and reboot-class Xids across restarts of the
// hive: they end with the boot (a new boot id), not with the process.
// Used by the tick's goroutine alone.
type stickyStore struct {
	path string
	log  *slog.Logger
	f    stickyFile
}

// openSticky reads the boot id and the store. A store of another boot
// has no active Xid left; its boots stay, for the escalation. Without a
// path or a boot id it keeps nothing and says so.
func openSticky(path, bootFile string, log *slog.Logger) *stickyStore {
	s := &stickyStore{path: path, log: log, f: stickyFile{GPUs: map[string]*stickyGPU{}}}
	var boot []byte
	f, err := os.Open(bootFile)
	if err == nil {
		boot, err = io.ReadAll(io.LimitReader(f, 128)) // a UUID and a newline
		_ = f.Close()
	}
	if err != nil {
		log.Info("no boot id: a GPU's reset- and reboot-class Xids last as long as the hive", "err", err)
		s.path = ""
		return s
	}
	s.f.Boot = string(bytes.TrimSpace(boot))
	if path == "" {
		return s
	}
	var old stickyFile
	if err := readSmall(path, &old); err != nil && !os.IsNotExist(err) {
		log.Warn("GPU health store not read: starting empty", "path", path, "err", err)
	}
	for uuid, g := range old.GPUs {
		if g == nil || len(s.f.GPUs) >= maxStickyGPUs {
			continue
		}
		if old.Boot != s.f.Boot {
			g.Active, g.Action = 0, "" // the reboot ended it
		}
		s.f.GPUs[uuid] = g
	}
	return s
}

func readSmall(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStickyBytes+1))
	if err != nil {
		return err
	}
	if len(b) > maxStickyBytes {
		return fmt.Errorf("over %d bytes", maxStickyBytes)
	}
	return json.Unmarshal(b, v)
}

// active are the sticky Xids of this boot, by GPU UUID.
func (s *stickyStore) active() map[string]stickyGPU {
	out := map[string]stickyGPU{}
	for uuid, g := range s.f.GPUs {
		if g.Active != 0 {
			out[uuid] = *g
		}
	}
	return out
}

// note records a sticky Xid of this boot and returns its action: the
// catalogue's, or a hardware inspection once the same Xid came back after
// two reboots.
func (s *stickyStore) note(uuid string, code uint64, action string) string {
	g := s.f.GPUs[uuid]
	if g == nil {
		if len(s.f.GPUs) >= maxStickyGPUs {
			return action
		}
		g = &stickyGPU{Boots: map[string][]string{}}
		s.f.GPUs[uuid] = g
	}
	if g.Boots == nil {
		g.Boots = map[string][]string{}
	}
	key := fmt.Sprint(code)
	if boots := g.Boots[key]; s.f.Boot != "" && !slices.Contains(boots, s.f.Boot) {
		g.Boots[key] = append(boots, s.f.Boot)[max(0, len(boots)+1-maxBootsPerXID):]
	}
	if len(g.Boots[key]) >= escalateAfter {
		action = wire.ActionHardwareInspection
	}
	g.Active, g.Action = code, action
	s.save()
	return action
}

// save writes the store whole, through a private temporary file.
func (s *stickyStore) save() {
	if s.path == "" {
		return
	}
	b, err := json.Marshal(s.f)
	if err == nil {
		tmp := filepath.Join(filepath.Dir(s.path), "."+filepath.Base(s.path)+".tmp")
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, s.path)
		}
	}
	if err != nil {
		s.log.Warn("GPU health store not written: a restart of the hive forgets this boot's sticky Xids", "path", s.path, "err", err)
	}
}
