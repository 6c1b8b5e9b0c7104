package exampleimages

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// filesLayer makes one layer of the build results: each source (a file or
// folder under dir) at its path in the image, owned by owner ("uid:gid"),
// with the parent folders it needs. Times are zero so the same build makes
// the same layer.
func filesLayer(dir string, files map[string]string, owner string) (v1.Layer, error) {
	uidS, gidS, _ := strings.Cut(owner, ":")
	uid, err1 := strconv.Atoi(uidS)
	gid, err2 := strconv.Atoi(gidS)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("owner %q is not uid:gid", owner)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	dirEntry := func(name string, uid, gid int) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, Uid: uid, Gid: gid, ModTime: time.Unix(0, 0)})
	}
	srcs := make([]string, 0, len(files))
	for s := range files {
		srcs = append(srcs, s)
	}
	sort.Strings(srcs)
	for _, s := range srcs {
		dst := strings.TrimPrefix(files[s], "/")
		// Parents the image may lack belong to root, as a Dockerfile's COPY makes them.
		for p, parents := path.Dir(dst), []string{}; ; p = path.Dir(p) {
			if p == "." || p == "/" {
				for i := len(parents) - 1; i >= 0; i-- {
					if err := dirEntry(parents[i], 0, 0); err != nil {
						return nil, err
					}
				}
				break
			}
			parents = append(parents, p)
		}
		root := filepath.Join(dir, s)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			name := path.Join(dst, filepath.ToSlash(rel))
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				return dirEntry(name, uid, gid)
			case d.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, Uid: uid, Gid: gid, ModTime: time.Unix(0, 0)})
			case d.Type().IsRegular():
				mode := int64(0o644)
				if info.Mode()&0o111 != 0 {
					mode = 0o755
				}
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: info.Size(), Mode: mode, Uid: uid, Gid: gid, ModTime: time.Unix(0, 0)}); err != nil {
					return err
				}
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(tw, f)
				return err
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", s, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
