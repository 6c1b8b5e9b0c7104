package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// dialTimeout bounds the TCP connect and the SSH handshake.
const dialTimeout = 30 * time.Second

type sftpRemote struct {
	ssh  *ssh.Client
	c    *sftp.Client
	root string
	name string
	stop func() bool
}

// openSFTP connects with the private key of c.KeyFile and accepts only the
// host key pinned in c.HostKey.
func openSFTP(ctx context.Context, c Config) (Remote, error) {
	name := displayURL(c.URL)
	signer, err := loadKey(c.KeyFile)
	if err != nil {
		return nil, err
	}
	check, algos, err := pinnedHostKey(c.HostKey)
	if err != nil {
		return nil, err
	}
	port := c.URL.Port()
	if port == "" {
		port = "22"
	}
	addr := net.JoinHostPort(c.URL.Hostname(), port)
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: unreachable: %w", name, err)
	}
	_ = nc.SetDeadline(time.Now().Add(dialTimeout))
	conn, chans, reqs, err := ssh.NewClientConn(nc, addr, &ssh.ClientConfig{
		User:              c.URL.User.Username(),
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   check,
		HostKeyAlgorithms: algos,
		Timeout:           dialTimeout,
	})
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	_ = nc.SetDeadline(time.Time{})
	client := ssh.NewClient(conn, chans, reqs)
	sc, err := sftp.NewClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("%s: start sftp: %w", name, err)
	}
	r := &sftpRemote{ssh: client, c: sc, root: path.Clean(c.URL.Path), name: name}
	// A cancelled run closes the connection, which ends every transfer.
	r.stop = context.AfterFunc(ctx, func() { _ = client.Close() })
	if _, err := sc.Stat(r.root); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("%s: the directory %s: %w", name, r.root, err)
	}
	return r, nil
}

// loadKey reads an unencrypted private key that only its owner can read,
// as ssh itself demands. Errors never quote the file.
func loadKey(file string) (ssh.Signer, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvSSHKeyFile, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: the private key %s is readable by others (mode %04o): chmod 600 it", EnvSSHKeyFile, file, st.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvSSHKeyFile, err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("%s: the private key %s has a passphrase; the copy runs unattended, so give it a key without one that only root can read", EnvSSHKeyFile, file)
	case err != nil:
		return nil, fmt.Errorf("%s: %s is not a private key ssh can read", EnvSSHKeyFile, file)
	}
	return signer, nil
}

// pinnedHostKey turns OFFHOST_SSH_HOST_KEY into a host key check that
// accepts that one key only, and the algorithms to ask the server for so
// that it presents that key rather than another of its keys.
func pinnedHostKey(pin string) (ssh.HostKeyCallback, []string, error) {
	pin = strings.TrimSpace(pin)
	refuse := func(host string, key ssh.PublicKey, want string) error {
		return fmt.Errorf("host key of %s is %s %s, not the pinned %s: refusing to connect "+
			"(if the server's key really changed, set %s again from a trusted source)",
			host, key.Type(), ssh.FingerprintSHA256(key), want, EnvSSHHostKey)
	}
	if strings.HasPrefix(pin, "SHA256:") {
		return func(host string, _ net.Addr, key ssh.PublicKey) error {
			if ssh.FingerprintSHA256(key) != pin {
				return refuse(host, key, pin)
			}
			return nil
		}, nil, nil
	}
	_, _, pinned, _, _, err := ssh.ParseKnownHosts([]byte(pin))
	if err != nil {
		return nil, nil, fmt.Errorf("%s is neither a known_hosts line (as ssh-keyscan prints it) nor a SHA256: fingerprint: %w", EnvSSHHostKey, err)
	}
	want := pinned.Marshal()
	algos := []string{pinned.Type()}
	if pinned.Type() == ssh.KeyAlgoRSA {
		algos = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return func(host string, _ net.Addr, key ssh.PublicKey) error {
		if !bytes.Equal(key.Marshal(), want) {
			return refuse(host, key, pinned.Type()+" "+ssh.FingerprintSHA256(pinned))
		}
		return nil
	}, algos, nil
}

func (r *sftpRemote) String() string { return r.name }

func (r *sftpRemote) full(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return path.Join(r.root, key), nil
}

func (r *sftpRemote) wrap(op, key string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s %s on %s: %w", op, key, r.name, ErrNotExist)
	}
	var st *sftp.StatusError
	if errors.As(err, &st) && st.FxCode() == sftp.ErrSSHFxFailure {
		return fmt.Errorf("%s %s on %s: %w (the server gives no reason for a failed write: a full disk or a quota is the usual one)", op, key, r.name, err)
	}
	return fmt.Errorf("%s %s on %s: %w", op, key, r.name, err)
}

func (r *sftpRemote) Put(ctx context.Context, key string, src io.ReadSeeker, size int64, _ string) error {
	full, err := r.full(key)
	if err != nil {
		return err
	}
	dir := path.Dir(full)
	if err := r.c.MkdirAll(dir); err != nil {
		return r.wrap("create the folder of", key, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	tmp := path.Join(dir, "."+path.Base(full)+".partial-"+hex.EncodeToString(b))
	f, err := r.c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return r.wrap("put", key, err)
	}
	n, err := io.Copy(f, io.LimitReader(src, size+1))
	if err == nil && n != size {
		err = fmt.Errorf("read %d bytes, expected %d", n, size)
	}
	if err == nil {
		// fsync@openssh.com: the data is on the remote disk before the
		// rename makes it visible.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.c.PosixRename(tmp, full)
	}
	if err != nil {
		_ = r.c.Remove(tmp)
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return r.wrap("put", key, err)
	}
	return nil
}

func (r *sftpRemote) Get(ctx context.Context, key string, w io.Writer) error {
	full, err := r.full(key)
	if err != nil {
		return err
	}
	f, err := r.c.Open(full)
	if err != nil {
		return r.wrap("get", key, err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.WriteTo(w); err != nil {
		return r.wrap("get", key, err)
	}
	return nil
}

func (r *sftpRemote) Stat(ctx context.Context, key string) (Object, error) {
	full, err := r.full(key)
	if err != nil {
		return Object{}, err
	}
	st, err := r.c.Stat(full)
	if err != nil {
		return Object{}, r.wrap("stat", key, err)
	}
	return Object{Key: key, Size: st.Size(), ModTime: st.ModTime()}, nil
}

func (r *sftpRemote) List(ctx context.Context, dir string) ([]Object, error) {
	full, err := r.full(dir)
	if err != nil {
		return nil, err
	}
	entries, err := r.c.ReadDir(full)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, r.wrap("list", dir, err)
	}
	var out []Object
	for _, e := range entries {
		if !e.Mode().IsRegular() {
			continue
		}
		out = append(out, Object{Key: dir + "/" + e.Name(), Size: e.Size(), ModTime: e.ModTime()})
	}
	return out, nil
}

func (r *sftpRemote) Delete(ctx context.Context, key string) error {
	full, err := r.full(key)
	if err != nil {
		return err
	}
	if err := r.c.Remove(full); err != nil && !errors.Is(err, os.ErrNotExist) {
		return r.wrap("delete", key, err)
	}
	return nil
}

func (r *sftpRemote) Close() error {
	r.stop()
	err := r.c.Close()
	if cerr := r.ssh.Close(); err == nil {
		err = cerr
	}
	return err
}
