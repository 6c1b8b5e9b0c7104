package layer

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// tree makes a small rootfs with every kind of entry the writer handles.
func tree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(rel string, body string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), mode))
		require.NoError(t, os.Chmod(p, mode))
	}
	mk("etc/hostname", "box\n", 0o644)
	mk("etc/shadow", "root:*:\n", 0o600)
	mk("usr/bin/su", "#!/bin/sh\n", 0o755|os.ModeSetuid)
	mk("home/app/data", "mine", 0o640)
	require.NoError(t, os.Chown(filepath.Join(root, "home/app/data"), 1000, 1001))
	require.NoError(t, os.Chown(filepath.Join(root, "home/app"), 1000, 1001))
	require.NoError(t, os.Symlink("../etc/hostname", filepath.Join(root, "usr/hostname-link")))
	require.NoError(t, os.Link(filepath.Join(root, "etc/hostname"), filepath.Join(root, "usr/hostname-hard")))
	mk("proc/1/status", "kernel", 0o644)
	mk("run/lock/x", "runtime", 0o644)
	mk("dev/null-ish", "device", 0o644)
	mk("sys/kernel", "k", 0o644)
	mk("srv/run/kept", "not the top-level run", 0o644)
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "srv/fifo"), 0o600))
	require.NoError(t, syscall.Mknod(filepath.Join(root, "srv/null"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	return root
}

func entries(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		out[h.Name] = h
	}
}

func write(t *testing.T, root string, opt Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteTar(&buf, root, opt))
	return buf.Bytes()
}

func TestLayerKeepsWhatAnImageNeeds(t *testing.T) {
	root := tree(t)
	got := entries(t, write(t, root, Options{}))
	cases := []struct {
		name  string
		path  string
		check func(t *testing.T, h *tar.Header)
	}{
		{"regular file mode", "etc/shadow", func(t *testing.T, h *tar.Header) {
			require.Equal(t, byte(tar.TypeReg), h.Typeflag)
			require.Equal(t, int64(0o600), h.Mode)
		}},
		{"setuid bit", "usr/bin/su", func(t *testing.T, h *tar.Header) { require.Equal(t, int64(0o4755), h.Mode) }},
		{"ownership of a file", "home/app/data", func(t *testing.T, h *tar.Header) {
			require.Equal(t, 1000, h.Uid)
			require.Equal(t, 1001, h.Gid)
		}},
		{"ownership of a directory", "home/app/", func(t *testing.T, h *tar.Header) {
			require.Equal(t, byte(tar.TypeDir), h.Typeflag)
			require.Equal(t, 1000, h.Uid)
		}},
		{"symlink target", "usr/hostname-link", func(t *testing.T, h *tar.Header) {
			require.Equal(t, byte(tar.TypeSymlink), h.Typeflag)
			require.Equal(t, "../etc/hostname", h.Linkname)
		}},
		{"second name of a hardlink", "usr/hostname-hard", func(t *testing.T, h *tar.Header) {
			require.Equal(t, byte(tar.TypeLink), h.Typeflag)
			require.Equal(t, "etc/hostname", h.Linkname)
		}},
		{"fifo", "srv/fifo", func(t *testing.T, h *tar.Header) { require.Equal(t, byte(tar.TypeFifo), h.Typeflag) }},
		{"fixed mtime", "etc/hostname", func(t *testing.T, h *tar.Header) { require.True(t, h.ModTime.Equal(Epoch), h.ModTime) }},
		{"run below /srv is content", "srv/run/kept", func(t *testing.T, h *tar.Header) { require.Equal(t, int64(21), h.Size) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, ok := got[c.path]
			require.True(t, ok, "layer of %s lacks %s", root, c.path)
			c.check(t, h)
		})
	}
	for _, skipped := range []string{"proc/1/status", "proc/1/", "run/lock/x", "dev/null-ish", "sys/kernel", "srv/null"} {
		require.NotContains(t, got, skipped, "runtime-owned %s must not be in a layer", skipped)
	}
	for _, kept := range []string{"proc/", "run/", "dev/", "sys/"} {
		require.Contains(t, got, kept, "mount point %s stays as an empty directory", kept)
	}
}

func TestLayerIsDeterministic(t *testing.T) {
	root := tree(t)
	first := write(t, root, Options{})

	// touching files (a rebuild) does not change the bytes
	later := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(root, "etc/hostname"), later, later))
	require.Equal(t, first, write(t, root, Options{}), "mtimes must not change the layer")

	// the same content written in another order gives the same bytes
	other := tree(t)
	require.Equal(t, first, write(t, other, Options{}), "two identical trees must give identical layers")

	// a content change does
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("other\n"), 0o644))
	require.NotEqual(t, first, write(t, root, Options{}), "a content change must change the layer")
}

func TestLayerKeepFilter(t *testing.T) {
	root := tree(t)
	got := entries(t, write(t, root, Options{Keep: func(rel string) bool { return !Under(rel, "home") }}))
	require.NotContains(t, got, "home/")
	require.NotContains(t, got, "home/app/data")
	require.Contains(t, got, "etc/hostname")
}
