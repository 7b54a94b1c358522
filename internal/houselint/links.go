package houselint

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// linkRe finds an inline Markdown link's target: [text](target).
// Reference links and autolinks are not used in this repository.
var linkRe = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// Links reports every relative link in the Markdown files under root
// whose file does not exist or whose #anchor names no heading there.
// Links to other sites are not followed: CI has no network.
func Links(root string) ([]Finding, error) {
	docs, err := markdownFiles(root)
	if err != nil {
		return nil, err
	}
	anchors := map[string]map[string]bool{}
	anchorsOf := func(p string) (map[string]bool, error) {
		if a, ok := anchors[p]; ok {
			return a, nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		a := headingAnchors(string(b))
		anchors[p] = a
		return a, nil
	}
	var out []Finding
	for _, p := range docs {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, p)
		for i, line := range proseLines(string(b)) {
			for _, m := range linkRe.FindAllStringSubmatch(line, -1) {
				if f := checkLink(p, m[1], anchorsOf); f != "" {
					out = append(out, Finding{fmt.Sprintf("%s:%d", rel, i+1), f})
				}
			}
		}
	}
	return out, nil
}

// checkLink returns what is wrong with target as linked from file, or "".
func checkLink(file, target string, anchorsOf func(string) (map[string]bool, error)) string {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return ""
	}
	path, anchor, _ := strings.Cut(target, "#")
	dest := file
	if path != "" {
		dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
		if _, err := os.Stat(dest); err != nil {
			return fmt.Sprintf("link %q: no such file", target)
		}
	}
	if anchor == "" || !strings.HasSuffix(dest, ".md") {
		return ""
	}
	a, err := anchorsOf(dest)
	if err != nil {
		return fmt.Sprintf("link %q: %v", target, err)
	}
	if !a[anchor] {
		return fmt.Sprintf("link %q: no heading with that anchor", target)
	}
	return ""
}

func markdownFiles(root string) ([]string, error) {
	return files(root, func(n string) bool { return strings.HasSuffix(n, ".md") })
}

// proseLines returns the file's lines with those inside fenced code
// blocks blanked, so that line numbers stay right and code is not read
// as links or headings.
func proseLines(s string) []string {
	lines := strings.Split(s, "\n")
	in := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			lines[i] = ""
			continue
		}
		if in {
			lines[i] = ""
		}
	}
	return lines
}

// headingAnchors are the anchors GitHub gives a file's headings: lower
// case, punctuation dropped, spaces as hyphens, a repeat suffixed -1, -2.
func headingAnchors(s string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, l := range proseLines(s) {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(l, "#"))
		if text == "" {
			continue
		}
		a := slug(text)
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
