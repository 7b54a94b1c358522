package procfs

import (
	"os"
	"testing"
)

// A command name may hold spaces, parentheses and a ") " of its own: the
// fields are those after its last ')'.
func TestParseStat(t *testing.T) {
	line := []byte("4242 (llm ) (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 123456 1000000 4096 18446744073709551615\n")
	s, err := ParseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Comm) != "llm ) (x) y" || s.State != 'S' || s.PPID != 1 || s.PGRP != 4242 || s.UTime != 250 || s.STime != 50 ||
		s.StartTime != 123456 || s.RSS != 4096 || s.Flags&PFKthread != 0 || s.Zombie() {
		t.Fatalf("got %+v", s)
	}
	for _, bad := range []string{"", "4242 (x S 1", "4242 (x) S 1 2", "4242 (x) S one 4242 4242 0 -1 0 0 0 0 0 250 50 0 0 20 0 3 0 1 1 1"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseStat(line) }); n != 0 {
		t.Errorf("%v allocations per parse", n)
	}
}

func TestReadStatOfSelf(t *testing.T) {
	s, err := ReadStat(os.Getpid())
	if err != nil || int(s.PPID) != os.Getppid() || s.StartTime == 0 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := ReadStat(1 << 30); err == nil {
		t.Error("a pid that cannot exist was read")
	}
}

func TestParseIO(t *testing.T) {
	r, w, err := ParseIO([]byte("rchar: 1\nwchar: 2\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n"))
	if err != nil || r != 4096 || w != 8192 {
		t.Fatalf("%d %d %v", r, w, err)
	}
	if _, _, err := ParseIO([]byte("read_bytes: x\nwrite_bytes: 1\n")); err == nil {
		t.Error("a bad number parsed")
	}
	if _, _, err := ParseIO([]byte("rchar: 1\n")); err == nil {
		t.Error("a file without the counters parsed")
	}
}
