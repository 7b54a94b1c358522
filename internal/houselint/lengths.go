// Package houselint checks the house rules a reviewer would otherwise
// count by hand: no function over 60 lines and no file over 400 outside
// tests, and relative links and anchors in the Markdown that resolve.
// Its test runs them over the repository, so `make test` enforces them.
package houselint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Finding is one broken rule, with where it is.
type Finding struct {
	Pos  string // path:line
	What string
}

func (f Finding) String() string { return f.Pos + ": " + f.What }

// skipDir says which directories the checks never enter: hidden ones
// (.git, .cache), testdata and vendored trees.
func skipDir(name string) bool {
	return name != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || name == "node_modules")
}

// files lists the files under root whose names keep says to, outside the
// directories skipDir leaves out.
func files(root string, keep func(name string) bool) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if keep(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// goSources lists the non-test Go files under root.
func goSources(root string) ([]string, error) {
	return files(root, func(n string) bool { return strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") })
}

// Lengths reports every function (declared or literal) longer than
// maxFunc lines and every file longer than maxFile lines among the
// non-test Go files under root.
func Lengths(root string, maxFunc, maxFile int) ([]Finding, error) {
	files, err := goSources(root)
	if err != nil {
		return nil, fmt.Errorf("list Go files: %w", err)
	}
	var out []Finding
	fset := token.NewFileSet()
	for _, p := range files {
		src, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, p)
		if n := strings.Count(string(src), "\n"); n > maxFile {
			out = append(out, Finding{rel + ":1", fmt.Sprintf("file of %d lines (at most %d)", n, maxFile)})
		}
		f, err := parser.ParseFile(fset, p, src, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", rel, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			name, body := funcBody(n)
			if body == nil {
				return true
			}
			start, end := fset.Position(n.Pos()).Line, fset.Position(body.Rbrace).Line
			if lines := end - start + 1; lines > maxFunc {
				out = append(out, Finding{fmt.Sprintf("%s:%d", rel, start), fmt.Sprintf("%s of %d lines (at most %d)", name, lines, maxFunc)})
			}
			return true
		})
	}
	return out, nil
}

func funcBody(n ast.Node) (string, *ast.BlockStmt) {
	switch x := n.(type) {
	case *ast.FuncDecl:
		if x.Recv != nil && len(x.Recv.List) == 1 {
			return "method " + x.Name.Name, x.Body
		}
		return "func " + x.Name.Name, x.Body
	case *ast.FuncLit:
		return "func literal", x.Body
	}
	return "", nil
}
