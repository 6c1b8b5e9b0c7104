// Package remote reaches the second location the backups are copied to: a
// directory on another host over SFTP, or a bucket of an S3-compatible
// object store. It moves files; which files, in which order and when a copy
// counts as complete is the backup package's business.
//
// Both targets store a key only once it is complete: SFTP writes under a
// hidden temporary name and renames, S3 stores an object in one PUT whose
// SHA-256 the server checks. Credentials come from the data server's env
// file and never reach a command line, a log line or an error.
package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path"
	"strings"
	"time"
)

// ErrNotExist is returned for a key that is not stored.
var ErrNotExist = errors.New("not stored on the remote")

// ErrNotConfigured is returned when the env file names no off-host target.
var ErrNotConfigured = errors.New("no off-host target configured")

// Object is one stored file.
type Object struct {
	// Key is slash-separated and relative to the remote's root.
	Key     string
	Size    int64
	ModTime time.Time
	// SHA256 is the hex SHA-256 the server computed and keeps for the
	// object, or "" when it keeps none (SFTP).
	SHA256 string
}

// Name is the last element of the key.
func (o Object) Name() string { return path.Base(o.Key) }

// Remote is a place to keep copies of the backups.
type Remote interface {
	// Put stores size bytes of r under key. The key appears only once all
	// of it is stored; an interrupted Put leaves no object under key (at
	// most a hidden temporary one beside it, named "."+name+".partial-…").
	// sha256 is the hex digest of the content: a server that checks
	// checksums refuses content that does not match it.
	Put(ctx context.Context, key string, r io.ReadSeeker, size int64, sha256 string) error
	// Get writes the content of key to w.
	Get(ctx context.Context, key string, w io.Writer) error
	// Stat describes key, or returns an error wrapping ErrNotExist.
	Stat(ctx context.Context, key string) (Object, error)
	// List returns the files directly inside the folder dir (hidden ones
	// included); a folder that does not exist is empty.
	List(ctx context.Context, dir string) ([]Object, error)
	// Delete removes key; a key that is not there is not an error.
	Delete(ctx context.Context, key string) error
	// String names the remote for people: never a secret.
	String() string
	Close() error
}

// Variables of the env file that configure the off-host copy.
const (
	// EnvURL is sftp://user@host[:port]/absolute/dir or s3://bucket[/prefix].
	EnvURL = "OFFHOST_URL"
	// EnvSSHKeyFile is the path of the private key (readable by its owner
	// only, without a passphrase) the SFTP target accepts.
	EnvSSHKeyFile = "OFFHOST_SSH_KEY_FILE"
	// EnvSSHHostKey pins the SFTP server's host key: a known_hosts line
	// (what ssh-keyscan prints) or a SHA256:… fingerprint.
	EnvSSHHostKey = "OFFHOST_SSH_HOST_KEY"
	// EnvS3Endpoint is https://host[:port] of the S3-compatible server
	// (plain http only on a loopback address).
	EnvS3Endpoint        = "OFFHOST_S3_ENDPOINT"
	EnvS3Region          = "OFFHOST_S3_REGION"
	EnvS3AccessKeyID     = "OFFHOST_S3_ACCESS_KEY_ID"
	EnvS3SecretAccessKey = "OFFHOST_S3_SECRET_ACCESS_KEY"
)

// Config is what Open needs, read from the env file.
type Config struct {
	URL *url.URL
	// SFTP
	KeyFile string
	HostKey string
	// S3
	Endpoint        *url.URL
	Region          string
	AccessKeyID     string
	SecretAccessKey string
}

// Secrets lists the values that must never be printed.
func (c Config) Secrets() []string { return []string{c.SecretAccessKey} }

// ConfigFromEnv reads and checks the off-host settings through get (the env
// file, then the environment). Every problem is reported before anything is
// dialled; ErrNotConfigured when OFFHOST_URL is unset.
func ConfigFromEnv(get func(string) string) (Config, error) {
	var c Config
	raw := strings.TrimSpace(get(EnvURL))
	if raw == "" {
		return c, fmt.Errorf("%w: set %s in the env file (sftp://user@host/dir or s3://bucket/prefix)", ErrNotConfigured, EnvURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return c, fmt.Errorf("%s: %w", EnvURL, err)
	}
	c.URL = u
	var problems []string
	need := func(name string) string {
		v := strings.TrimSpace(get(name))
		if v == "" {
			problems = append(problems, name+" is not set")
		}
		return v
	}
	switch u.Scheme {
	case "sftp":
		if u.User == nil || u.User.Username() == "" {
			problems = append(problems, EnvURL+" names no user (sftp://user@host/dir)")
		}
		if _, set := u.User.Password(); set {
			problems = append(problems, EnvURL+" holds a password: the SFTP target takes keys only ("+EnvSSHKeyFile+")")
		}
		if u.Hostname() == "" {
			problems = append(problems, EnvURL+" names no host")
		}
		if !strings.HasPrefix(u.Path, "/") || path.Clean(u.Path) == "/" {
			problems = append(problems, EnvURL+" must name an absolute directory other than / on the host")
		}
		c.KeyFile = need(EnvSSHKeyFile)
		c.HostKey = need(EnvSSHHostKey)
	case "s3":
		if u.Host == "" {
			problems = append(problems, EnvURL+" names no bucket (s3://bucket/prefix)")
		}
		if u.User != nil {
			problems = append(problems, EnvURL+" holds credentials: put them in "+EnvS3AccessKeyID+" and "+EnvS3SecretAccessKey)
		}
		if ep := need(EnvS3Endpoint); ep != "" {
			e, err := url.Parse(ep)
			switch {
			case err != nil || e.Host == "" || (e.Scheme != "https" && e.Scheme != "http"):
				problems = append(problems, EnvS3Endpoint+" must be https://host[:port]")
			case e.User != nil || (e.Path != "" && e.Path != "/"):
				problems = append(problems, EnvS3Endpoint+" must be just https://host[:port], without credentials or a path")
			case e.Scheme == "http" && !isLoopback(e.Hostname()):
				problems = append(problems, EnvS3Endpoint+" uses plain http to another machine: the backups would cross the network unencrypted; use https")
			default:
				c.Endpoint = e
			}
		}
		c.Region = strings.TrimSpace(get(EnvS3Region))
		if c.Region == "" {
			c.Region = "us-east-1"
		}
		c.AccessKeyID = need(EnvS3AccessKeyID)
		c.SecretAccessKey = need(EnvS3SecretAccessKey)
	default:
		problems = append(problems, fmt.Sprintf("%s has scheme %q: use sftp:// or s3://", EnvURL, u.Scheme))
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("off-host settings: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// displayURL prints a target without anything that could be secret.
func displayURL(u *url.URL) string {
	v := *u
	if v.User != nil {
		v.User = url.User(v.User.Username())
	}
	return v.String()
}

// isLoopback is true for names that resolve only to this machine's loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Open connects to the configured remote. The connection lives until Close
// or until ctx ends.
func Open(ctx context.Context, c Config) (Remote, error) {
	switch c.URL.Scheme {
	case "sftp":
		return openSFTP(ctx, c)
	case "s3":
		return openS3(ctx, c)
	}
	return nil, fmt.Errorf("unknown off-host scheme %q", c.URL.Scheme)
}

// checkKey refuses keys that could leave the remote's root.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || path.Clean(key) != key || key == ".." || strings.HasPrefix(key, "../") {
		return fmt.Errorf("invalid remote key %q", key)
	}
	return nil
}
