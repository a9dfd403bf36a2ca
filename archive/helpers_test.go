package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var formats = []Format{Maildir, Mbox}

// eachFormat runs the test body once per store: the conformance suite.
func eachFormat(t *testing.T, body func(t *testing.T, f Format)) {
	t.Helper()
	for _, f := range formats {
		t.Run(string(f), func(t *testing.T) { body(t, f) })
	}
}

func spec(f Format, dir string) string { return string(f) + ":" + dir }

func mustOpen(t testing.TB, f Format, dir string, opt Options) *Archive {
	t.Helper()
	a, err := Open(context.Background(), spec(f, dir), opt)
	if err != nil {
		t.Fatalf("Open %s: %v", spec(f, dir), err)
	}
	return a
}

func mustCreate(t testing.TB, a *Archive, name string) *Folder {
	t.Helper()
	fo, err := a.CreateFolder(name, "")
	if err != nil {
		t.Fatalf("CreateFolder %q: %v", name, err)
	}
	return fo
}

func mustAppend(t testing.TB, fo *Folder, msg []byte, info AppendInfo) Meta {
	t.Helper()
	m, err := fo.Append(bytes.NewReader(msg), info)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return m
}

func mustCommit(t testing.TB, fo *Folder) {
	t.Helper()
	if err := fo.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func readMessage(t testing.TB, fo *Folder, key string) []byte {
	t.Helper()
	rc, err := fo.Open(key)
	if err != nil {
		t.Fatalf("Open %s: %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// testLogger returns a logger writing into buf.
func testLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// walkTree lists every path under root, relative, with its mode.
func walkTree(t testing.TB, root string) map[string]os.FileMode {
	t.Helper()
	out := map[string]os.FileMode{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = info.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var testDate = time.Date(2024, 3, 9, 17, 4, 5, 0, time.FixedZone("", 5*3600+30*60))

// syncStore makes the store's appends durable, as Commit does before it
// writes the index.
func syncStore(st store) error {
	run, finish, err := st.startSync()
	if err != nil || run == nil {
		return err
	}
	err = run()
	finish(err == nil)
	return err
}
