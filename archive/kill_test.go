package archive

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The kill test: a child process (this test binary, re-executed) appends
// messages in a loop and commits every few, the way fetch does; the parent
// kills it with SIGKILL at seeded random moments, reopens the archive and
// checks that what is indexed is exactly what was written, that nothing
// unindexed is left, and that nothing is there twice; then lets the child
// carry on from where the committed state says it stopped.

const (
	killChildEnv = "MAILARK_ARCHIVE_KILL_CHILD"
	killFolders  = 2
)

// killMessage is the deterministic message with this UID in this folder:
// the parent regenerates it to compare bytes.
func killMessage(folder int, uid uint32) []byte {
	r := rand.New(rand.NewSource(int64(folder)<<32 | int64(uid)))
	var b bytes.Buffer
	eol := []string{"\r\n", "\n"}[r.Intn(2)]
	fmt.Fprintf(&b, "Subject: message %d/%d%sMessage-ID: <%d.%d@kill.test>%s", folder, uid, eol, folder, uid, eol)
	b.WriteString(eol)
	lines := r.Intn(400)
	for i := range lines {
		switch r.Intn(20) {
		case 0:
			b.WriteString(strings.Repeat(">", r.Intn(3)) + "From the body" + eol)
		case 1:
			b.WriteString(eol)
		default:
			fmt.Fprintf(&b, "line %d of message %d %s%s", i, uid, strings.Repeat("x", r.Intn(120)), eol)
		}
	}
	if r.Intn(4) == 0 {
		b.WriteString("no final newline")
	}
	return b.Bytes()
}

func killFlags(uid uint32, round int) []string {
	all := []string{`\Seen`, `\Answered`, `\Flagged`, "$Forwarded", "kw1", "kw2"}
	var out []string
	for i, f := range all {
		if (int(uid)+round)>>i&1 == 1 {
			out = append(out, f)
		}
	}
	return out
}

// TestKillChild is the child's body; it does nothing in a normal run.
func TestKillChild(t *testing.T) {
	cfg := os.Getenv(killChildEnv)
	if cfg == "" {
		t.Skip("helper process for TestKillAnywhere")
	}
	parts := strings.Split(cfg, "|")
	format, dir := Format(parts[0]), parts[1]
	seed, _ := strconv.ParseInt(parts[2], 10, 64)
	limit, _ := strconv.Atoi(parts[3])
	if err := runKillChild(format, dir, seed, uint32(limit)); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// runKillChild appends to every folder, a batch at a time in turn, up to
// UID limit. It resumes from each folder's committed state and skips UIDs
// already indexed (committed after the index but before the state), as
// fetch does.
func runKillChild(format Format, dir string, seed int64, limit uint32) error {
	a, err := Open(context.Background(), spec(format, dir), Options{LockWait: 10 * time.Second})
	if err != nil {
		return err
	}
	defer a.Close()
	r := rand.New(rand.NewSource(seed))
	folders := make([]*Folder, killFolders)
	for fi := range folders {
		if folders[fi], err = a.CreateFolder(killFolderName(fi), ""); err != nil {
			return err
		}
	}
	for {
		progressed := false
		for fi, fo := range folders {
			more, err := killChildBatch(fo, fi, r, limit)
			if err != nil {
				return err
			}
			progressed = progressed || more
		}
		if !progressed {
			return nil
		}
	}
}

// killChildBatch appends 1-7 messages to one folder, sometimes changes an
// older message's flags, and commits with the new state.
func killChildBatch(fo *Folder, fi int, r *rand.Rand, limit uint32) (bool, error) {
	st := fo.State()
	if st.LastUID >= limit {
		return false, nil
	}
	batch := uint32(1 + r.Intn(7))
	for uid := st.LastUID + 1; uid <= min(limit, st.LastUID+batch); uid++ {
		if _, ok := fo.ByUID(uid); !ok {
			msg := killMessage(fi, uid)
			date := time.Unix(1700000000+int64(uid)*3600, 0).In(time.FixedZone("", -7*3600))
			if _, err := fo.Append(bytes.NewReader(msg), AppendInfo{UID: uid, Flags: killFlags(uid, 0), Date: date}); err != nil {
				return false, err
			}
		}
		if r.Intn(10) == 0 && uid > 3 {
			old := uid - 1 - uint32(r.Intn(3))
			if m, ok := fo.ByUID(old); ok {
				if err := fo.SetFlags(m.Key, killFlags(old, 1)); err != nil {
					return false, err
				}
			}
		}
	}
	st.LastUID = min(limit, st.LastUID+batch)
	fo.SetState(st)
	return true, fo.Commit()
}

func killFolderName(i int) string { return []string{"INBOX", "Archive/2024 \u00e9t\u00e9"}[i] }

func TestKillAnywhere(t *testing.T) {
	points := 20
	if stressTest {
		points = 200
	}
	eachFormat(t, func(t *testing.T, f Format) {
		seed := time.Now().UnixNano()
		if s := os.Getenv("MAILARK_KILL_SEED"); s != "" {
			seed, _ = strconv.ParseInt(s, 10, 64)
		}
		t.Logf("seed %d (rerun with MAILARK_KILL_SEED=%d)", seed, seed)
		r := rand.New(rand.NewSource(seed))
		dir := filepath.Join(t.TempDir(), "archive")
		const limit = 100000 // never reached before the kill
		killed := 0
		verified := make([]int, killFolders)
		for killed < points {
			cmd := killChildCommand(f, dir, r.Int63(), limit)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(r.Intn(120)) * time.Millisecond)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			err := cmd.Wait()
			if status, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !status.Signaled() {
				t.Fatalf("child ended before the kill: %v\n%s", err, stderr.String())
			}
			killed++
			// Bytes are compared for the messages added since the last
			// check (the ones a kill can hurt) and, every tenth time and
			// at the end, for all of them.
			verified = checkAfterKill(t, f, dir, verified, killed%10 == 0)
		}
		// Finally run to completion from whatever state the kills left.
		done := uint32(0)
		a := mustOpen(t, f, dir, Options{ReadOnly: true})
		for fi := range killFolders {
			if fo, err := a.Folder(killFolderName(fi)); err == nil {
				done = max(done, fo.State().LastUID)
			}
		}
		a.Close()
		final := done + 25
		cmd := killChildCommand(f, dir, r.Int63(), int(final))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("final child: %v\n%s", err, out)
		}
		counts := checkAfterKill(t, f, dir, verified, true)
		for fi, n := range counts {
			if n != int(final) {
				t.Errorf("folder %d: %d messages after completion, want %d", fi, n, final)
			}
		}
		t.Logf("%d kill points; %d messages per folder at the end", killed, final)
	})
}

func killChildCommand(f Format, dir string, seed int64, limit int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d|%d", killChildEnv, f, dir, seed, limit))
	return cmd
}

// checkAfterKill reopens the archive (which repairs it) and checks every
// folder: UIDs, nothing unindexed left, and the bytes of every message
// from verified[folder] on (of all with full). It returns the message count
// per folder.
func checkAfterKill(t *testing.T, f Format, dir string, verified []int, full bool) []int {
	t.Helper()
	before := readOnlyCounts(t, f, dir)
	a, err := Open(context.Background(), spec(f, dir), Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer a.Close()
	counts := make([]int, killFolders)
	for fi := range killFolders {
		fo, err := a.Folder(killFolderName(fi))
		if err != nil {
			continue // killed before the folder existed
		}
		entries := fo.Entries()
		counts[fi] = len(entries)
		// UIDs are exactly 1..n: nothing twice, nothing missing.
		for i, m := range entries {
			if m.UID != uint32(i+1) {
				t.Fatalf("folder %d entry %d has UID %d; index UIDs must be 1..n without duplicates", fi, i, m.UID)
			}
			if !full && i < verified[fi] {
				continue
			}
			if got := readMessage(t, fo, m.Key); !bytes.Equal(got, killMessage(fi, m.UID)) {
				t.Fatalf("folder %d UID %d: bytes differ from what was appended", fi, m.UID)
			}
		}
		if st := fo.State(); int(st.LastUID) > len(entries) {
			t.Fatalf("folder %d: state says UID %d but the index has %d messages", fi, st.LastUID, len(entries))
		}
		assertNothingUnindexed(t, fo)
		if counts[fi] != before[fi] {
			t.Fatalf("folder %d: read-only view before repair had %d messages, %d after", fi, before[fi], counts[fi])
		}
	}
	return counts
}

// readOnlyCounts is what a reader (ls, verify) sees before any repair.
func readOnlyCounts(t *testing.T, f Format, dir string) []int {
	t.Helper()
	counts := make([]int, killFolders)
	a, err := Open(context.Background(), spec(f, dir), Options{ReadOnly: true})
	if err != nil {
		return counts // killed before the archive was created
	}
	defer a.Close()
	for fi := range killFolders {
		if fo, err := a.Folder(killFolderName(fi)); err == nil {
			counts[fi] = len(fo.Entries())
		}
	}
	return counts
}

// assertNothingUnindexed checks the disk holds exactly the indexed
// messages: no stray maildir file, no mbox bytes after the last message.
func assertNothingUnindexed(t *testing.T, fo *Folder) {
	t.Helper()
	switch s := fo.st.(type) {
	case *maildirStore:
		indexed := map[string]bool{}
		for _, m := range fo.Entries() {
			indexed[m.Key] = true
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			names, err := readDirNames(filepath.Join(s.dir, sub))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if sub == "tmp" || !indexed[keyOf(n)] {
					t.Fatalf("folder %q: unindexed file %s/%s left after repair", fo.name, sub, n)
				}
				delete(indexed, keyOf(n))
			}
		}
		if len(indexed) > 0 {
			t.Fatalf("folder %q: %d indexed messages have no file", fo.name, len(indexed))
		}
	case *mboxStore:
		st, err := os.Stat(s.path)
		if err != nil {
			t.Fatal(err)
		}
		var end int64
		for i := range fo.idx.entries {
			end = max(end, fo.idx.entries[i].loc.end())
		}
		if st.Size() != end {
			t.Fatalf("folder %q: mbox is %d bytes, last indexed message ends at %d", fo.name, st.Size(), end)
		}
	}
}
