// gofiles: the file operations of file_ops, done by a statically linked Go
// program. Go does not use libc: it issues raw syscalls from many threads
// (its runtime starts several), so it checks a tracer against a different
// syscall mix. Usage: gofiles DIR
// Afterwards DIR/gen/final.txt holds "hello from go\n" and DIR/gen/link
// points to final.txt; exits 1 with a message on any failure.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func run(dir string) error {
	gen := filepath.Join(dir, "gen")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(gen, "tmp.txt")
	if err := os.WriteFile(tmp, []byte("hello from go\n"), 0o644); err != nil {
		return err
	}
	final := filepath.Join(gen, "final.txt")
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	data, err := os.ReadFile(final)
	if err != nil {
		return err
	}
	if string(data) != "hello from go\n" {
		return fmt.Errorf("read back %q", data)
	}
	if err := os.Symlink("final.txt", filepath.Join(gen, "link")); err != nil {
		return err
	}
	entries, err := os.ReadDir(gen)
	if err != nil {
		return err
	}
	if len(entries) != 2 {
		return fmt.Errorf("expected 2 entries in %s, got %d", gen, len(entries))
	}
	return nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gofiles DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gofiles:", err)
		os.Exit(1)
	}
}
