package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
)

// folderRecord is one folder in folders.json.
type folderRecord struct {
	Name       string `json:"name"`
	Path       string `json:"path"`         // relative to the root, "/" separated
	ID         string `json:"id,omitempty"` // sidecar directory under .mailark/folders; "" for NoSelect
	SpecialUse string `json:"special_use,omitempty"`
	NoSelect   bool   `json:"noselect,omitempty"` // only holds other folders
}

// registry maps archive folder names to paths. It is the only place that
// knows a path that was disambiguated or shortened.
type registry struct {
	Version int            `json:"version"`
	NextID  int            `json:"next_id"`
	Folders []folderRecord `json:"folders"`

	format Format
	byName map[string]int
	byFold map[string]string // folded path -> name holding it
}

const registryVersion = 1

func newRegistry(f Format) *registry {
	r := &registry{Version: registryVersion, NextID: 1, format: f}
	r.reindex()
	return r
}

func loadRegistry(file string, f Format) (*registry, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return newRegistry(f), nil
	}
	if err != nil {
		return nil, err
	}
	r := &registry{format: f}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if r.Version != registryVersion {
		return nil, fmt.Errorf("%s: unknown version %d (written by a newer mailark?)", file, r.Version)
	}
	for i, rec := range r.Folders {
		name, ok := decodeLossless(rec.Name)
		if !ok {
			return nil, fmt.Errorf("%s: bad encoded folder name %q", file, rec.Name)
		}
		r.Folders[i].Name = name
		if !validRelPath(rec.Path) || (rec.ID != "" && !validID(rec.ID)) {
			return nil, fmt.Errorf("%s: folder %q has an unsafe path %q", file, rec.Name, rec.Path)
		}
	}
	r.reindex()
	if len(r.byName) != len(r.Folders) || len(r.byFold) != len(r.Folders) {
		return nil, fmt.Errorf("%s: two folders share a name or a path", file)
	}
	return r, nil
}

func validID(id string) bool {
	n, err := strconv.Atoi(id)
	return err == nil && n > 0 && id == fmt.Sprintf("%04d", n)
}

func (r *registry) reindex() {
	r.byName = make(map[string]int, len(r.Folders))
	r.byFold = make(map[string]string, len(r.Folders))
	for i, rec := range r.Folders {
		r.byName[rec.Name] = i
		r.byFold[foldPath(rec.Path)] = rec.Name
	}
}

func (r *registry) save(file string) error {
	out := *r
	out.Folders = make([]folderRecord, len(r.Folders))
	for i, rec := range r.Folders {
		rec.Name = encodeLossless(rec.Name)
		out.Folders[i] = rec
	}
	data, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(file, append(data, '\n'))
}

func (r *registry) get(name string) (folderRecord, bool) {
	i, ok := r.byName[name]
	if !ok {
		return folderRecord{}, false
	}
	return r.Folders[i], true
}

func (r *registry) sorted() []folderRecord {
	out := append([]folderRecord(nil), r.Folders...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ensure registers name (and, as NoSelect, any missing parent) and returns
// its record. A NoSelect record is promoted when selectable is true. The
// caller saves the registry when changed is true.
func (r *registry) ensure(name string, selectable bool) (rec folderRecord, changed bool, err error) {
	parts, err := splitName(name)
	if err != nil {
		return folderRecord{}, false, err
	}
	parentPath := ""
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		last := i == len(parts)-1
		idx, ok := r.byName[sub]
		if !ok {
			p, err := r.allocPath(parentPath, parts[i])
			if err != nil {
				return folderRecord{}, false, fmt.Errorf("%w: %q: %v", ErrBadName, name, err)
			}
			r.Folders = append(r.Folders, folderRecord{Name: sub, Path: p, NoSelect: true})
			idx = len(r.Folders) - 1
			r.byName[sub] = idx
			r.byFold[foldPath(p)] = sub
			changed = true
		}
		if last && selectable && r.Folders[idx].ID == "" {
			r.Folders[idx].ID = fmt.Sprintf("%04d", r.NextID)
			r.Folders[idx].NoSelect = false
			r.NextID++
			changed = true
		}
		parentPath = r.childDir(r.Folders[idx].Path)
	}
	return r.Folders[r.byName[name]], changed, nil
}

// childDir is the directory, relative to the root, that holds the
// subfolders of the folder at p: the folder's own directory for maildir
// (Dovecot LAYOUT=fs), "p.sbd" for mbox (Thunderbird).
func (r *registry) childDir(p string) string {
	if r.format == Mbox {
		return p + ".sbd"
	}
	return p
}

// allocPath finds a path for a new component under parentDir that no
// other folder holds, not even under case folding.
func (r *registry) allocPath(parentDir, component string) (string, error) {
	c := escapeComponent(component, r.format)
	if len(c) > maxComponent {
		c = shortenComponent(c)
	}
	candidate := path.Join(parentDir, c)
	for n := 2; r.pathTaken(candidate); n++ {
		candidate = path.Join(parentDir, c+"%%"+strconv.Itoa(n))
	}
	if len(candidate) > maxPath {
		return "", fmt.Errorf("path would be %d bytes long, more than %d", len(candidate), maxPath)
	}
	return candidate, nil
}

// pathTaken reports whether p, or the directory that would hold p's
// children, collides with anything registered.
func (r *registry) pathTaken(p string) bool {
	if _, ok := r.byFold[foldPath(p)]; ok {
		return true
	}
	if r.format == Mbox {
		// "x.sbd" of one folder must not be another folder's file; the
		// escaping makes that impossible for natural names, checked anyway.
		if _, ok := r.byFold[foldPath(p+".sbd")]; ok {
			return true
		}
	}
	return false
}

func (r *registry) setSpecialUse(name, use string) bool {
	i, ok := r.byName[name]
	if !ok || r.Folders[i].SpecialUse == use {
		return false
	}
	r.Folders[i].SpecialUse = use
	return true
}
