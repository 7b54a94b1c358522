package houselint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the module's root, two directories up.
const repoRoot = "../.."

func TestHouseLengths(t *testing.T) {
	found, err := Lengths(repoRoot, 60, 400)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Error(f)
	}
}

func TestHouseLinks(t *testing.T) {
	found, err := Links(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Error(f)
	}
}

// The checks find what they are for: a long function, a long file, a
// missing file and a missing anchor, and pass what is fine.
func TestChecksFindWhatTheyAreFor(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	long := "package x\n\nfunc Long() {\n" + strings.Repeat("\t_ = 1\n", 60) + "}\n\nfunc Short() {\n\tf := func() {}\n\tf()\n}\n"
	write("long.go", long)
	write("long_test.go", "package x\n\nfunc TestLong() {\n"+strings.Repeat("\t_ = 1\n", 500)+"}\n")
	found, err := Lengths(dir, 60, 40)
	if err != nil {
		t.Fatal(err)
	}
	got := findingsText(found)
	for _, want := range []string{"long.go:1: file of 69 lines", "long.go:3: func Long of 62 lines"} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
	if len(found) != 2 {
		t.Errorf("want 2 findings (tests are not checked), got:\n%s", got)
	}

	write("a.md", "# Top\n\n## What it does, in short\n\nSee [b](b.md#the-part), [here](#what-it-does-in-short), [gone](c.md), [bad](#nowhere), [web](https://example.com/x).\n\n```\n[not a link](nowhere.md)\n```\n")
	write("b.md", "# The part\n")
	found, err = Links(dir)
	if err != nil {
		t.Fatal(err)
	}
	got = findingsText(found)
	for _, want := range []string{`a.md:5: link "c.md": no such file`, `a.md:5: link "#nowhere": no heading with that anchor`} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
	if len(found) != 2 {
		t.Errorf("want 2 broken links, got:\n%s", got)
	}
}

func findingsText(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}
