package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The checks after each run count what a program wrote, so a program that
// exits 0 without doing the work is reported as failed, not as fast.

// countMaildir counts the message files in every cur/ and new/ below root,
// skipping hidden directories (mailark's .mailark sidecar, peers' state).
func countMaildir(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.Name() == "cur" || d.Name() == "new" {
			entries, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			for _, e := range entries {
				if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
					n++
				}
			}
			return filepath.SkipDir
		}
		return nil
	})
	return n, err
}

// countMbox counts "From " separator lines in every regular file below
// root (body lines starting with "From " are quoted by all writers here).
func countMbox(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != root {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		c, err := countFromLines(p)
		n += c
		return err
	})
	return n, err
}

func countFromLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	n, bol := 0, true
	for {
		line, err := r.ReadSlice('\n')
		if bol && bytes.HasPrefix(line, []byte("From ")) {
			n++
		}
		bol = err == nil
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return n, err
		}
	}
}

func countArchive(format, dir string) (int, error) {
	if format == "mbox" {
		return countMbox(dir)
	}
	return countMaildir(dir)
}

func expectCount(format, dir string, want int) error {
	got, err := countArchive(format, dir)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s %s holds %d messages, want %d", format, dir, got, want)
	}
	return nil
}

// expectRawOutput checks the JSON a raw client printed.
func expectRawOutput(output string, want int) error {
	var res rawResult
	if err := json.Unmarshal([]byte(lastLines(output, 1)), &res); err != nil {
		return fmt.Errorf("raw client output %q: %w", lastLines(output, 1), err)
	}
	if res.Messages != want {
		return fmt.Errorf("raw client read %d messages, want %d", res.Messages, want)
	}
	return nil
}
