package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rbee/hive/bus/wire"
)

// modelEntry mirrors the original's ModelEntry JSON (H model catalog).
type modelEntry struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	Status  string `json:"status"`
	AddedAt string `json:"added_at"`
}

// models lists the entries of ModelDir: each file or directory is a model.
func (m *Jobs) models() ([]modelEntry, error) {
	ents, err := os.ReadDir(m.cfg.ModelDir)
	if errors.Is(err, fs.ErrNotExist) {
		return []modelEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read model dir: %w", err)
	}
	out := []modelEntry{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if me, err := m.model(e.Name()); err == nil {
			out = append(out, me)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// model describes one model; id must name an entry directly in ModelDir.
func (m *Jobs) model(id string) (modelEntry, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`) || strings.ContainsRune(id, 0) {
		return modelEntry{}, fmt.Errorf("invalid model id %q", id)
	}
	path := filepath.Join(m.cfg.ModelDir, id)
	st, err := os.Lstat(path)
	if err != nil {
		return modelEntry{}, fmt.Errorf("model %q not found in %s", id, m.cfg.ModelDir)
	}
	size := st.Size()
	if st.IsDir() {
		size = 0
		_ = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					size += info.Size()
				}
			}
			return nil
		})
	}
	return modelEntry{ID: id, Name: id, Path: path, Size: size, Status: "Available", AddedAt: wire.PushTimestamp(st.ModTime())}, nil
}

func (m *Jobs) listModels(n *narrator) error {
	n.fn = "rbee_hive::job_router::model_list"
	list, err := m.models()
	if err != nil {
		return err
	}
	n.sayf("model_list_result", "Found %d model(s) in %s", len(list), m.cfg.ModelDir)
	b, _ := json.Marshal(list)
	n.say("model_list_json", string(b))
	return nil
}

func (m *Jobs) getModel(n *narrator, id string) error {
	n.fn = "rbee_hive::job_router::model_get"
	me, err := m.model(id)
	if err != nil {
		return err
	}
	n.sayf("model_get_found", "Model '%s' (%d bytes)", me.ID, me.Size)
	b, _ := json.MarshalIndent(me, "", "  ")
	n.say("model_get_details", string(b))
	return nil
}

func (m *Jobs) deleteModel(n *narrator, id string) error {
	n.fn = "rbee_hive::job_router::model_delete"
	me, err := m.model(id)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(me.Path); err != nil {
		return fmt.Errorf("delete model %q: %w", id, err)
	}
	n.sayf("model_delete_ok", "Model '%s' deleted (%d bytes freed)", id, me.Size)
	return nil
}
