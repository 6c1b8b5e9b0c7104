// Package layer turns a root filesystem directory into a deterministic OCI
// layer: entries sorted by path, one fixed mtime, ownership, modes, symlinks
// and hardlinks kept, and the contents of /dev, /proc, /sys and /run left out.
// The same tree always gives the same bytes, so an image digest only changes
// when its content does.
package layer

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Epoch is the modification time written for every entry.
var Epoch = time.Unix(0, 0).UTC()

// skipContents are directories kept (as empty directories) without their
// contents: they are the kernel's or the runtime's, never the image's.
var skipContents = map[string]bool{"dev": true, "proc": true, "sys": true, "run": true}

// Options select what goes into a layer.
type Options struct {
	// Keep, when set, decides for each slash-separated path relative to the
	// root (never empty) whether it and, for a directory, its contents go in.
	Keep func(rel string) bool
}

// WriteTar writes the tree under root as an uncompressed tar stream to w.
func WriteTar(w io.Writer, root string, opt Options) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	if err := walk(tw, root, "", opt, links); err != nil {
		return fmt.Errorf("layer %s: %w", root, err)
	}
	return tw.Close()
}

// WriteFile writes the layer tar of root to path (created or replaced).
func WriteFile(path, root string, opt Options) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := WriteTar(f, root, opt); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func walk(tw *tar.Writer, root, rel string, opt Options, links map[[2]uint64]string) error {
	dir := filepath.Join(root, filepath.FromSlash(rel))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		childRel := name
		if rel != "" {
			childRel = rel + "/" + name
		}
		if opt.Keep != nil && !opt.Keep(childRel) {
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(childRel))
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if err := writeEntry(tw, p, childRel, fi, links); err != nil {
			return fmt.Errorf("%s: %w", childRel, err)
		}
		if fi.IsDir() && !(rel == "" && skipContents[name]) {
			if err := walk(tw, root, childRel, opt, links); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeEntry(tw *tar.Writer, p, rel string, fi fs.FileInfo, links map[[2]uint64]string) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("no ownership information")
	}
	h := &tar.Header{
		Name:    rel,
		Mode:    int64(fi.Mode().Perm()),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: Epoch,
		Format:  tar.FormatPAX,
	}
	if fi.Mode()&fs.ModeSetuid != 0 {
		h.Mode |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		h.Mode |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		h.Mode |= 0o1000
	}
	switch m := fi.Mode(); {
	case m.IsDir():
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, target
	case m.IsRegular():
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if first, seen := links[key]; seen {
				h.Typeflag, h.Linkname = tar.TypeLink, first
				return tw.WriteHeader(h)
			}
			links[key] = rel
		}
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		_, err = io.Copy(tw, f)
		return err
	case m&fs.ModeNamedPipe != 0:
		h.Typeflag = tar.TypeFifo
	case m&fs.ModeDevice != 0, m&fs.ModeSocket != 0:
		// device nodes and sockets belong to the runtime, not to an image
		return nil
	default:
		return fmt.Errorf("unsupported file type %v", m)
	}
	return tw.WriteHeader(h)
}

// Under reports whether rel is prefix or lies below it (both slash-separated).
func Under(rel, prefix string) bool {
	return rel == prefix || strings.HasPrefix(rel, prefix+"/")
}
