package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailark/mailark/internal/mailerr"
)

// runSummary is the last --json object of every command that runs jobs.
type runSummary struct {
	Type     string  `json:"type"` // "summary"
	Jobs     int     `json:"jobs"`
	OK       int     `json:"ok"`
	Partial  int     `json:"partial"`
	Failed   int     `json:"failed"`
	Messages int64   `json:"messages"` // fetched + uploaded
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"duration_seconds"`
	ExitCode int     `json:"exit_code"`
	Error    string  `json:"error,omitempty"`
}

func summarize(results []*jobResult, d time.Duration, err error) runSummary {
	sum := runSummary{Type: "summary", Jobs: len(results), Seconds: d.Round(time.Millisecond).Seconds(),
		ExitCode: mailerr.ExitCode(err)}
	if err != nil {
		sum.Error = oneLine(err.Error())
	}
	for _, r := range results {
		switch r.Status {
		case "ok":
			sum.OK++
		case "partial":
			sum.Partial++
		default:
			sum.Failed++
		}
		for _, st := range []*Stats{r.Fetch, r.Restore} {
			if st != nil {
				sum.Messages += st.Messages
				sum.Bytes += st.Bytes
			}
		}
	}
	return sum
}

// runSingle opens the session, lets build turn the command's flags into
// the one job of fetch, restore or migrate, runs it and reports it.
func (a *app) runSingle(ctx context.Context, out outputFlags, build func(*session) (*job, error)) error {
	s, err := newSession(a.env, out)
	if err != nil {
		return err
	}
	defer s.Close()
	j, err := build(s)
	if err != nil {
		return err
	}
	d := s.newDisplay()
	r := a.runJob(ctx, s, d, j)
	if d != nil {
		d.Close()
	}
	s.report(j, r)
	s.emit(summarize([]*jobResult{r}, r.duration, r.err))
	return r.err
}

// report prints a finished job: its --json object, the --dry-run plan,
// verify differences, and on a terminal the summary lines.
func (s *session) report(j *job, r *jobResult) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.emit(r)
	prefix := ""
	if j.name != "" {
		prefix = j.name + ": "
	}
	if r.Fetch != nil {
		if j.dryRun {
			s.printPlan(prefix+"would fetch", r.Fetch)
		} else {
			s.summary("%s%s", prefix, fetchLine(j, r.Fetch))
		}
	}
	if r.Restore != nil {
		if j.dryRun {
			s.printPlan(prefix+"would restore", r.Restore)
		} else {
			s.summary("%s%s", prefix, restoreLine(j, r.Restore))
		}
	}
	if r.Verify != nil {
		s.printVerify(prefix, r.Verify, j.kind == "migrate")
	}
}

func fetchLine(j *job, st *Stats) string {
	var b strings.Builder
	folders := plural(int64(st.Folders), "folder", "folders")
	if st.Messages == 0 {
		fmt.Fprintf(&b, "no new messages in %s of %s", folders, j.source)
	} else {
		fmt.Fprintf(&b, "fetched %s (%s) from %s of %s into %s",
			plural(st.Messages, "new message", "new messages"), humanBytes(st.Bytes), folders, j.source, j.archive)
	}
	if st.FlagUpdates > 0 {
		fmt.Fprintf(&b, ", %s", plural(int64(st.FlagUpdates), "flag change", "flag changes"))
	}
	if st.Deleted > 0 {
		fmt.Fprintf(&b, ", deleted %d from the server", st.Deleted)
	}
	if st.Failed > 0 {
		fmt.Fprintf(&b, ", %d failed", st.Failed)
	}
	fmt.Fprintf(&b, " in %s", humanDuration(st.duration))
	return b.String()
}

func restoreLine(j *job, st *Stats) string {
	var b strings.Builder
	if st.Messages == 0 {
		fmt.Fprintf(&b, "nothing to upload to %s: %s already there", j.target, plural(st.Skipped, "message", "messages"))
	} else {
		fmt.Fprintf(&b, "restored %s (%s) in %s to %s",
			plural(st.Messages, "message", "messages"), humanBytes(st.Bytes),
			plural(int64(st.Folders), "folder", "folders"), j.target)
		if st.Skipped > 0 {
			fmt.Fprintf(&b, ", %d already there", st.Skipped)
		}
	}
	if st.Created > 0 {
		fmt.Fprintf(&b, ", %s created", plural(int64(st.Created), "folder", "folders"))
	}
	if st.Failed > 0 {
		fmt.Fprintf(&b, ", %d failed", st.Failed)
	}
	fmt.Fprintf(&b, " in %s", humanDuration(st.duration))
	return b.String()
}

// printPlan shows a --dry-run plan: the user asked for it, so it is
// printed with or without a terminal.
func (s *session) printPlan(what string, st *Stats) {
	for _, f := range st.PerFolder {
		name := f.Name
		if f.Target != "" && f.Target != f.Name {
			name += " → " + f.Target
		}
		var notes []string
		if f.Create {
			notes = append(notes, "new folder")
		}
		if f.Skipped > 0 {
			notes = append(notes, fmt.Sprintf("%d already there", f.Skipped))
		}
		if f.Note != "" {
			notes = append(notes, f.Note)
		}
		note := ""
		if len(notes) > 0 {
			note = "  (" + strings.Join(notes, ", ") + ")"
		}
		s.printf("  %-40s %8d msgs %10s%s\n", name, f.Messages, humanBytes(f.Bytes), note)
	}
	s.printf("dry run: %s %s (%s) in %s; nothing was written\n", what,
		plural(st.Messages, "message", "messages"), humanBytes(st.Bytes), plural(int64(st.Folders), "folder", "folders"))
}

// printVerify lists folders that differ (always: that is the answer the
// user wants), and a match line on a terminal.
func (s *session) printVerify(prefix string, r *VerifyReport, afterMigrate bool) {
	var matched int64
	differ := 0
	for _, f := range r.Folders {
		matched += f.Matched
		if f.MissingOnServer == 0 && f.MissingInArchive == 0 {
			continue
		}
		if afterMigrate && f.MissingOnServer == 0 {
			continue // the target may hold more than the archive
		}
		differ++
		name := f.Name
		switch {
		case name == "":
			name = "(server only) " + f.Target
		case f.Target != "" && f.Target != f.Name:
			name += " → " + f.Target
		}
		s.printf("%s%-40s %d missing on the server, %d missing in the archive\n", prefix, name, f.MissingOnServer, f.MissingInArchive)
		s.printExamples(prefix+"  not on the server: ", f.MissingOnServerIDs)
		if !afterMigrate {
			s.printExamples(prefix+"  not in the archive: ", f.MissingInArchiveIDs)
		}
	}
	switch {
	case differ > 0:
	case afterMigrate:
		s.summary("%sverified: every archived message is on the server (%s)", prefix, plural(matched, "message", "messages"))
	default:
		s.summary("%sverified: archive and server match (%s in %s)", prefix,
			plural(matched, "message", "messages"), plural(int64(len(r.Folders)), "folder", "folders"))
	}
}

// printExamples lists a few messages of a difference; --json has them all.
func (s *session) printExamples(prefix string, ids []string) {
	const shown = 5
	for i, id := range ids {
		if i == shown {
			s.printf("%s... and %d more (--json lists all)\n", prefix, len(ids)-shown)
			return
		}
		s.printf("%s%s\n", prefix, id)
	}
}
