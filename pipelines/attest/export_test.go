package attest

import (
	"bytes"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PushArtifact lets the tests forge referrers: a tampered signature, one
// copied from another image, a signature without its SBOM.
func PushArtifact(repo name.Repository, subject v1.Descriptor, artifactType, layerType string, data []byte, annotations map[string]string, opts ...remote.Option) (string, error) {
	return push(repo, subject, artifactType, layerType, data, annotations, opts)
}

// Sign signs data as Attach does.
func (s *Signer) Sign(data []byte) ([]byte, error) { return s.sv.SignMessage(bytesReader(data)) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
