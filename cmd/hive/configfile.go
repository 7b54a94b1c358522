package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// applyConfigFile sets fs from a YAML file: the settings in their groups
// (http:, queen:, nats:, workers:, jobs:, limits:; the hive's own at the
// top). A file of the old flat layout (flag-name: value) still loads,
// with one warning that names each key's new place.
func applyConfigFile(fs *flag.FlagSet, path string, stderr io.Writer) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	set := func(name, where string, v any) error {
		s, err := scalar(v)
		if err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, where, err)
		}
		if err := fs.Set(name, s); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, where, err)
		}
		return nil
	}
	var flat []string
	legacy := map[string]any{}
	for _, top := range sortedKeys(raw) {
		v := raw[top]
		if g, ok := groupNamed(top); ok {
			sub, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("config file %s: %s: want a group of settings", path, top)
			}
			for _, name := range sortedKeys(sub) {
				k, ok := g.key(name)
				if !ok {
					return fmt.Errorf("config file %s: unknown setting %q", path, top+"."+name)
				}
				if err := set(k.flag, top+"."+name, sub[name]); err != nil {
					return err
				}
			}
			continue
		}
		if k, ok := groups[0].key(top); ok {
			if err := set(k.flag, top, v); err != nil {
				return err
			}
			continue
		}
		// The old flat layout: a flag name at the top.
		if g, k, ok := lookupKey(top); ok {
			flat = append(flat, top+" -> "+g.yamlPath(k))
			if err := set(k.flag, top, v); err != nil {
				return err
			}
			continue
		}
		if _, ok := mergedSettings[top]; ok {
			legacy[top] = v
			continue
		}
		return fmt.Errorf("config file %s: unknown setting %q", path, top)
	}
	for _, name := range sortedKeys(legacy) {
		s, err := scalar(legacy[name])
		if err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, name, err)
		}
		to, err := mergedSettings[name](fs, s)
		if err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, name, err)
		}
		flat = append(flat, name+" -> "+to)
	}
	if len(flat) > 0 {
		fmt.Fprintf(stderr, "hive: warning: config file %s has the old flat layout; it still loads, but move each key to its group: %s\n",
			path, strings.Join(flat, ", "))
	}
	return nil
}

// mergedSettings are the old settings folded into others, as an old flat
// file may still name them. Each sets its successor and names it.
var mergedSettings = map[string]func(fs *flag.FlagSet, v string) (string, error){
	"auth-read": func(fs *flag.FlagSet, v string) (string, error) {
		on, err := strconv.ParseBool(v)
		if err == nil && !on {
			err = fs.Set("access", "open-reads")
		}
		return "http.access: open-reads", err
	},
	"allow-unauthenticated": func(fs *flag.FlagSet, v string) (string, error) {
		on, err := strconv.ParseBool(v)
		if err == nil && on {
			err = fs.Set("access", "open")
		}
		return "http.access: open", err
	},
	"advertise-host": func(fs *flag.FlagSet, v string) (string, error) {
		if v != "" && fs.Lookup("advertise-url").Value.String() == "" {
			return "queen.advertise-url", fs.Set("advertise-url", v)
		}
		return "queen.advertise-url", nil
	},
	"gpu-util": func(fs *flag.FlagSet, v string) (string, error) {
		if v == "device" {
			if src := fs.Lookup("gpu-source").Value.String(); src == "auto" || src == "smi" {
				return "workers.gpu-source: smi-device", fs.Set("gpu-source", "smi-device")
			}
		}
		return "workers.gpu-source: smi-device", nil
	},
	"worker-match-on": func(fs *flag.FlagSet, v string) (string, error) {
		pattern, _ := workerMatch(fs.Lookup("worker-match").Value.String())
		if v != "exe" && v != "cmdline" {
			return "", fmt.Errorf("want exe or cmdline, not %q", v)
		}
		if pattern != "" {
			return "workers.match: " + v + ":REGEXP", fs.Set("worker-match", v+":"+pattern)
		}
		return "workers.match: " + v + ":REGEXP", nil
	},
}

func groupNamed(name string) (group, bool) {
	for _, g := range groups {
		if g.name != "" && g.name == name {
			return g, true
		}
	}
	return group{}, false
}

func (g group) key(yamlKey string) (key, bool) {
	for _, k := range g.keys {
		if k.yaml == yamlKey {
			return k, true
		}
	}
	return key{}, false
}

// scalar is a YAML value as a flag takes it; a list is comma-joined
// (cors-origins, queen allow).
func scalar(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case map[string]any:
		return "", fmt.Errorf("want a scalar")
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, err := scalar(e)
			if err != nil || strings.Contains(s, ",") {
				return "", fmt.Errorf("want a list of plain values")
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return fmt.Sprint(v), nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// print writes the effective configuration as YAML in the file's groups,
// secrets masked.
func (c *config) print(w io.Writer) {
	// Binding flags to c writes their defaults into it; restore the values
	// so the flag set reads c's current settings.
	saved := *c
	cur := newFlagSet(c)
	*c = saved
	for _, g := range groups {
		indent := ""
		if g.name != "" {
			fmt.Fprintf(w, "%s:\n", g.name)
			indent = "  "
		}
		for _, k := range g.keys {
			v := cur.Lookup(k.flag).Value.String()
			if secretFlags[k.flag] {
				v = maskURL(v)
			}
			src := c.sources[k.flag]
			if src == "" {
				src = "default"
			}
			fmt.Fprintf(w, "%s%s: %q # %s\n", indent, k.yaml, v, src)
		}
	}
}
