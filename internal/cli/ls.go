package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/rivo/uniseg"
	"github.com/spf13/cobra"
)

// lsOptions are the flags and arguments of `mailark ls`.
type lsOptions struct {
	Archive string
	JSON    bool
}

func (a *app) lsCommand() *cobra.Command {
	var o lsOptions
	cmd := &cobra.Command{
		Use:   "ls ARCHIVE",
		Short: "List an archive's folders: messages, bytes, special use, last sync",
		Long: `Ls lists the folders of an archive with their message counts, sizes, special
use (Sent, Drafts, ...) and, for mailark archives, when each folder was last
synchronised successfully and from which account. It reads without locking,
so it works while a fetch is running.

ARCHIVE is maildir:PATH or mbox:PATH, or the path of an mbox file, mbox tree
or maildir written by another program (then only counts are known).`,
		Example: `  mailark ls maildir:~/Mail/backup
  mailark ls --json mbox:~/Mail/old | jq '.folders[] | select(.messages > 0) | .name'
  mailark ls ~/.thunderbird/x.default/Mail/Local\ Folders`,
		Args: exactArgs("ARCHIVE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.begin()
			o.Archive = args[0]
			return a.runLs(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the listing as one JSON object")
	return cmd
}

// runLs is `mailark ls` without cobra, for tests.
func (a *app) runLs(ctx context.Context, o lsOptions) error {
	spec, err := readableArchive(o.Archive)
	if err != nil {
		return err
	}
	l, err := a.env.Engine.List(ctx, spec)
	if err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(a.env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	return writeListing(a.env.Stdout, l)
}

func writeListing(w io.Writer, l Listing) error {
	kind := l.Format
	if l.Foreign {
		kind += ", not a mailark archive: counts only"
	}
	if _, err := fmt.Fprintf(w, "%s (%s)\n", l.Archive, kind); err != nil {
		return err
	}
	var t table
	if l.Foreign {
		t.add("FOLDER", "SPECIAL", "MESSAGES", "SIZE")
	} else {
		t.add("FOLDER", "SPECIAL", "MESSAGES", "SIZE", "LAST SYNC", "SOURCE")
	}
	var msgs int
	var size int64
	for _, f := range l.Folders {
		msgs += f.Messages
		size += f.Bytes
		if f.NoSelect {
			// A parent that only holds other folders (IMAP \Noselect).
			t.add(f.Name, "", "-", "-")
			continue
		}
		row := []string{f.Name, f.SpecialUse, strconv.Itoa(f.Messages), humanBytes(f.Bytes)}
		if !l.Foreign {
			when, src := lastSync(f.Sync)
			row = append(row, when, src)
		}
		t.add(row...)
	}
	t.add("total: "+plural(int64(len(l.Folders)), "folder", "folders"), "", strconv.Itoa(msgs), humanBytes(size))
	return t.write(w)
}

// table lays out rows in columns two spaces apart, each as wide as its
// widest cell on screen: folder names are data in any script, so a cell
// is measured in terminal columns (a CJK letter takes two, a combining
// accent none), not bytes or runes. Rows may be short; no line ends in
// blanks.
type table struct{ rows [][]string }

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) error {
	var widths []int
	for _, row := range t.rows {
		for i, c := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], uniseg.StringWidth(c))
		}
	}
	var b strings.Builder
	for _, row := range t.rows {
		var line strings.Builder
		for i, c := range row {
			line.WriteString(c)
			if i < len(row)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-uniseg.StringWidth(c)+2))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// lastSync is the most recent successful sync of a folder and its source.
// A folder the server no longer has says so: it is kept in the archive.
func lastSync(syncs []SourceSync) (string, string) {
	var best SourceSync
	for _, s := range syncs {
		if best.Source == "" || s.LastSync.After(best.LastSync) {
			best = s
		}
	}
	if best.Source == "" {
		return "never", "-"
	}
	when := "never"
	if !best.LastSync.IsZero() {
		when = best.LastSync.Local().Format(time.DateTime)
	}
	src := best.Source
	if best.Gone {
		src += " (gone from server)"
	}
	if n := len(syncs); n > 1 {
		src += fmt.Sprintf(" (+%d more)", n-1)
	}
	return when, src
}
