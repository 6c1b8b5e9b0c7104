package remote_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup/remote"
	"github.com/krgeobuk/krgeobuk-infra/internal/offhosttest"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func sftpEnv(s *offhosttest.SSH) map[string]string {
	return map[string]string{
		remote.EnvURL: s.URL(), remote.EnvSSHKeyFile: s.KeyFile, remote.EnvSSHHostKey: s.HostKeyLine,
	}
}

func s3Env(s *offhosttest.S3, prefix string) map[string]string {
	return map[string]string{
		remote.EnvURL: "s3://" + s.Bucket + "/" + prefix, remote.EnvS3Endpoint: s.Endpoint(),
		remote.EnvS3AccessKeyID: s.AccessKey, remote.EnvS3SecretAccessKey: s.SecretKey,
	}
}

func open(t *testing.T, vars map[string]string) remote.Remote {
	t.Helper()
	c, err := remote.ConfigFromEnv(env(vars))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	r, err := remote.Open(ctx, c)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Both targets store, list, read back and delete files the same way.
func TestBothTargetsStoreWhatTheyAreGiven(t *testing.T) {
	t.Parallel()
	ssh := offhosttest.StartSSH(t)
	s3 := offhosttest.StartS3(t)
	targets := []struct {
		name string
		vars map[string]string
		file func(key string) string
	}{
		{"sftp", sftpEnv(ssh), ssh.Path},
		{"s3", s3Env(s3, "site-a"), func(k string) string { return s3.Path("site-a/" + k) }},
	}
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			r := open(t, tc.vars)
			require.NotContains(t, r.String(), tc.vars[remote.EnvS3SecretAccessKey]+"x")
			ctx := context.Background()
			content := bytes.Repeat([]byte("backup bytes\x00\xff"), 50000)
			require.NoError(t, r.Put(ctx, "auth-mysql/auth/a.sql.gz", bytes.NewReader(content), int64(len(content)), hexSum(content)))
			var got bytes.Buffer
			require.NoError(t, r.Get(ctx, "auth-mysql/auth/a.sql.gz", &got))
			require.Equal(t, content, got.Bytes())
			onDisk, err := os.ReadFile(tc.file("auth-mysql/auth/a.sql.gz"))
			require.NoError(t, err)
			require.Equal(t, content, onDisk, "the server's own file holds the content")
			st, err := r.Stat(ctx, "auth-mysql/auth/a.sql.gz")
			require.NoError(t, err)
			require.Equal(t, int64(len(content)), st.Size)
			if tc.name == "s3" {
				require.Equal(t, hexSum(content), st.SHA256, "the server keeps the object's SHA-256")
			}
			list, err := r.List(ctx, "auth-mysql/auth")
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, "auth-mysql/auth/a.sql.gz", list[0].Key)
			empty, err := r.List(ctx, "authz-mysql/authz")
			require.NoError(t, err)
			require.Empty(t, empty)
			_, err = r.Stat(ctx, "auth-mysql/auth/missing")
			require.ErrorIs(t, err, remote.ErrNotExist)
			require.NoError(t, r.Delete(ctx, "auth-mysql/auth/a.sql.gz"))
			require.NoError(t, r.Delete(ctx, "auth-mysql/auth/a.sql.gz"), "deleting what is gone is not an error")
			_, err = r.Stat(ctx, "auth-mysql/auth/a.sql.gz")
			require.ErrorIs(t, err, remote.ErrNotExist)
			require.Error(t, r.Put(ctx, "../escape", bytes.NewReader(nil), 0, hexSum(nil)))
		})
	}
}

// The S3 server checks the content against the digest it is told: bytes
// that do not match are not stored.
func TestS3RefusesContentThatDoesNotMatchItsDigest(t *testing.T) {
	t.Parallel()
	s3 := offhosttest.StartS3(t)
	r := open(t, s3Env(s3, ""))
	content := []byte("the real content")
	err := r.Put(context.Background(), "x/a.rdb", bytes.NewReader(content), int64(len(content)), hexSum([]byte("other content")))
	require.ErrorContains(t, err, "did not match")
	_, err = r.Stat(context.Background(), "x/a.rdb")
	require.ErrorIs(t, err, remote.ErrNotExist, "content that failed the check was stored")
}

// Only the pinned host key is accepted, whether pinned as a known_hosts line
// or as a fingerprint; a server presenting another key is refused before
// any data moves.
func TestSFTPAcceptsOnlyThePinnedHostKey(t *testing.T) {
	t.Parallel()
	ssh := offhosttest.StartSSH(t)
	other := offhosttest.StartSSH(t) // same user and key file layout, another host key
	tests := []struct {
		name string
		pin  string
		want string
	}{
		{"known_hosts line", ssh.HostKeyLine, ""},
		{"fingerprint", ssh.Fingerprint, ""},
		{"another server's line", strings.Replace(other.HostKeyLine, other.Addr(), ssh.Addr(), 1), "not the pinned ssh-ed25519 " + other.Fingerprint},
		{"another server's fingerprint", other.Fingerprint, "is ssh-ed25519 " + ssh.Fingerprint + ", not the pinned " + other.Fingerprint},
		{"garbage", "not a key", "neither a known_hosts line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars := sftpEnv(ssh)
			vars[remote.EnvSSHHostKey] = tc.pin
			c, err := remote.ConfigFromEnv(env(vars))
			require.NoError(t, err)
			r, err := remote.Open(context.Background(), c)
			if tc.want == "" {
				require.NoError(t, err)
				require.NoError(t, r.Close())
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// Settings that cannot work are refused, all at once, before anything is
// dialled; none of the refusals quotes a secret.
func TestConfigRefusesBadSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose_key")
	require.NoError(t, os.WriteFile(loose, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-material\n"), 0o644))
	tests := []struct {
		name string
		vars map[string]string
		want []string
	}{
		{"nothing", map[string]string{}, []string{"no off-host target configured", "OFFHOST_URL"}},
		{"ftp", map[string]string{remote.EnvURL: "ftp://h/x"}, []string{`scheme "ftp"`}},
		{"sftp without key, pin, user or directory", map[string]string{remote.EnvURL: "sftp://h"},
			[]string{"names no user", "absolute directory", "OFFHOST_SSH_KEY_FILE is not set", "OFFHOST_SSH_HOST_KEY is not set"}},
		{"sftp with a password", map[string]string{remote.EnvURL: "sftp://u:hunter2@h/d", remote.EnvSSHKeyFile: "k", remote.EnvSSHHostKey: "p"},
			[]string{"holds a password"}},
		{"s3 over http to another machine", map[string]string{remote.EnvURL: "s3://b", remote.EnvS3Endpoint: "http://10.0.0.9:9000",
			remote.EnvS3AccessKeyID: "a", remote.EnvS3SecretAccessKey: "very-secret-value"}, []string{"plain http to another machine"}},
		{"s3 without keys", map[string]string{remote.EnvURL: "s3://b/p", remote.EnvS3Endpoint: "https://s3.example.com"},
			[]string{"OFFHOST_S3_ACCESS_KEY_ID is not set", "OFFHOST_S3_SECRET_ACCESS_KEY is not set"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := remote.ConfigFromEnv(env(tc.vars))
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "very-secret-value")
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
	t.Run("a key others can read", func(t *testing.T) {
		c, err := remote.ConfigFromEnv(env(map[string]string{remote.EnvURL: "sftp://u@127.0.0.1:1/d", remote.EnvSSHKeyFile: loose, remote.EnvSSHHostKey: "SHA256:x"}))
		require.NoError(t, err)
		_, err = remote.Open(context.Background(), c)
		require.ErrorContains(t, err, "is readable by others (mode 0644): chmod 600 it")
		require.NotContains(t, err.Error(), "secret-key-material")
	})
}
