package remote

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Retries is the client's retry budget per request (minio-go backs off
// between attempts); a dead server fails a run in seconds, not minutes.
const s3Retries = 3

type s3Remote struct {
	c      *minio.Client
	bucket string
	prefix string
	name   string
	secret string
}

func openS3(ctx context.Context, c Config) (Remote, error) {
	name := fmt.Sprintf("s3://%s%s at %s", c.URL.Host, strings.TrimSuffix(c.URL.Path, "/"), c.Endpoint.Host)
	tr := &http.Transport{
		Proxy:                 nil, // the endpoint is reached directly, never through a proxy of the environment
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: 5 * time.Minute, // a server checks a large body before it answers
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       time.Minute,
	}
	client, err := minio.New(c.Endpoint.Host, &minio.Options{
		Creds:           credentials.NewStaticV4(c.AccessKeyID, c.SecretAccessKey, ""),
		Secure:          c.Endpoint.Scheme == "https",
		Region:          c.Region,
		BucketLookup:    minio.BucketLookupPath,
		TrailingHeaders: true,
		MaxRetries:      s3Retries,
		Transport:       tr,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, redactSecret(err.Error(), c.SecretAccessKey))
	}
	r := &s3Remote{c: client, bucket: c.URL.Host, prefix: strings.Trim(c.URL.Path, "/"), name: name, secret: c.SecretAccessKey}
	ok, err := client.BucketExists(ctx, r.bucket)
	if err != nil {
		return nil, r.wrap("open bucket", r.bucket, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: the bucket %s does not exist (create it; the backup tool never creates buckets)", name, r.bucket)
	}
	return r, nil
}

func (r *s3Remote) String() string { return r.name }

func (r *s3Remote) object(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if r.prefix == "" {
		return key, nil
	}
	return r.prefix + "/" + key, nil
}

func (r *s3Remote) wrap(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case minio.NoSuchKey, "NotFound":
		return fmt.Errorf("%s %s on %s: %w", op, key, r.name, ErrNotExist)
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied":
		return fmt.Errorf("%s %s on %s: the server refused the credentials of %s/%s: %s",
			op, key, r.name, EnvS3AccessKeyID, EnvS3SecretAccessKey, resp.Code)
	}
	return fmt.Errorf("%s %s on %s: %s", op, key, r.name, redactSecret(err.Error(), r.secret))
}

func redactSecret(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[REDACTED]")
}

// Put stores the object in one PUT (never a multipart upload, whose parts
// would outlive an interrupted run) with an x-amz-checksum-sha256 the server
// computes and keeps; the digest it reports must be sha256, so what it
// stored is what was meant. One PUT holds up to 5 GiB.
func (r *s3Remote) Put(ctx context.Context, key string, src io.ReadSeeker, size int64, sha256 string) error {
	obj, err := r.object(key)
	if err != nil {
		return err
	}
	raw, err := hex.DecodeString(sha256)
	if err != nil || len(raw) != 32 {
		return fmt.Errorf("put %s: %q is not a SHA-256", key, sha256)
	}
	info, err := r.c.PutObject(ctx, r.bucket, obj, src, size, minio.PutObjectOptions{
		ContentType:      "application/octet-stream",
		DisableMultipart: true,
		// The digest goes in as a header the server checks the body
		// against, computed from the backup's metadata, not from the
		// bytes as they are read.
		UserMetadata: map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(raw)},
	})
	if err != nil {
		return r.wrap("put", key, err)
	}
	got, err := fromBase64(info.ChecksumSHA256)
	switch {
	case err != nil || got == "":
		return fmt.Errorf("put %s on %s: the server reported no SHA-256 of what it stored", key, r.name)
	case got != sha256:
		return fmt.Errorf("put %s on %s: the server stored content with SHA-256 %s, not %s", key, r.name, got[:12], sha256[:min(12, len(sha256))])
	}
	return nil
}

func fromBase64(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	// A full-object checksum may carry a part count ("…-1").
	s, _, _ = strings.Cut(s, "-")
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func (r *s3Remote) Get(ctx context.Context, key string, w io.Writer) error {
	obj, err := r.object(key)
	if err != nil {
		return err
	}
	o, err := r.c.GetObject(ctx, r.bucket, obj, minio.GetObjectOptions{})
	if err != nil {
		return r.wrap("get", key, err)
	}
	defer func() { _ = o.Close() }()
	if _, err := io.Copy(w, o); err != nil {
		return r.wrap("get", key, err)
	}
	return nil
}

func (r *s3Remote) Stat(ctx context.Context, key string) (Object, error) {
	obj, err := r.object(key)
	if err != nil {
		return Object{}, err
	}
	info, err := r.c.StatObject(ctx, r.bucket, obj, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		return Object{}, r.wrap("stat", key, err)
	}
	sum, _ := fromBase64(info.ChecksumSHA256)
	return Object{Key: key, Size: info.Size, ModTime: info.LastModified, SHA256: sum}, nil
}

func (r *s3Remote) List(ctx context.Context, dir string) ([]Object, error) {
	obj, err := r.object(dir)
	if err != nil {
		return nil, err
	}
	var out []Object
	for o := range r.c.ListObjects(ctx, r.bucket, minio.ListObjectsOptions{Prefix: obj + "/"}) {
		if o.Err != nil {
			return nil, r.wrap("list", dir, o.Err)
		}
		if strings.HasSuffix(o.Key, "/") {
			continue // a deeper folder
		}
		out = append(out, Object{Key: dir + "/" + path.Base(o.Key), Size: o.Size, ModTime: o.LastModified})
	}
	return out, nil
}

func (r *s3Remote) Delete(ctx context.Context, key string) error {
	obj, err := r.object(key)
	if err != nil {
		return err
	}
	if err := r.c.RemoveObject(ctx, r.bucket, obj, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(r.wrap("delete", key, err), ErrNotExist) {
			return nil
		}
		return r.wrap("delete", key, err)
	}
	return nil
}

func (r *s3Remote) Close() error { return nil }
