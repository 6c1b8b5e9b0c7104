// Package sbom makes the software bill of materials published beside every
// image: a CycloneDX JSON document (github.com/CycloneDX/cyclonedx-go)
// listing each npm package a service's package-lock.json installs, with the
// image (repository and digest) as its subject.
package sbom

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// MediaType is the SBOM's media type, and the artifactType of its referrer.
const MediaType = "application/vnd.cyclonedx+json"

// Subject is the image a BOM describes.
type Subject struct {
	// Repository is the fully qualified repository, e.g. ghcr.io/krgeobuk/auth-server.
	Repository string
	// Digest is the image's (or index's) manifest digest, "sha256:...".
	Digest string
}

// FromLockfile builds the BOM of the image subject from an npm
// package-lock.json (lockfile version 2 or 3: its packages map). Every
// installed package is a component with its purl, its integrity hashes, its
// licence when the lockfile records one, and scope "excluded" for
// development dependencies (they are installed to build, not shipped to
// run) or "optional" for optional ones. Linked workspace folders are left
// out: their target is listed under its own path.
func FromLockfile(lock []byte, subject Subject) (*cdx.BOM, error) {
	if subject.Repository == "" || !strings.HasPrefix(subject.Digest, "sha256:") {
		return nil, fmt.Errorf("sbom: subject %s@%s is not an image pinned by digest", subject.Repository, subject.Digest)
	}
	var lf struct {
		Name            string                 `json:"name"`
		LockfileVersion *int                   `json:"lockfileVersion"`
		Packages        map[string]lockPackage `json:"packages"`
	}
	if err := json.Unmarshal(lock, &lf); err != nil {
		return nil, fmt.Errorf("sbom: package-lock.json is not JSON: %w", err)
	}
	switch {
	case lf.LockfileVersion == nil:
		return nil, errors.New("sbom: package-lock.json has no lockfileVersion: is it an npm lockfile?")
	case *lf.LockfileVersion < 2:
		return nil, fmt.Errorf("sbom: package-lock.json is lockfile version %d, which has no packages map: regenerate it with npm 7 or newer", *lf.LockfileVersion)
	case lf.Packages == nil:
		return nil, fmt.Errorf("sbom: package-lock.json (lockfile version %d) has no packages map", *lf.LockfileVersion)
	}
	var comps []cdx.Component
	seen := map[string]bool{}
	var errs []error
	for path, p := range lf.Packages {
		if path == "" || p.Link {
			continue
		}
		name := p.Name
		if i := strings.LastIndex(path, "node_modules/"); name == "" && i >= 0 {
			name = path[i+len("node_modules/"):]
		}
		if name == "" || p.Version == "" {
			errs = append(errs, fmt.Errorf("packages[%q] names no package and version", path))
			continue
		}
		c, err := component(name, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("packages[%q]: %w", path, err))
			continue
		}
		// The same version installed at two paths is one component.
		if seen[c.BOMRef] {
			continue
		}
		seen[c.BOMRef] = true
		comps = append(comps, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sbom: package-lock.json: %w", err)
	}
	sort.Slice(comps, func(i, j int) bool { return comps[i].BOMRef < comps[j].BOMRef })

	bom := cdx.NewBOM()
	// No timestamp and no serial number: the same image and lockfile give
	// the same document, so publishing again pushes nothing new.
	bom.Metadata = &cdx.Metadata{
		Component: &cdx.Component{
			BOMRef:     subject.Repository + "@" + subject.Digest,
			Type:       cdx.ComponentTypeContainer,
			Name:       subject.Repository,
			Version:    subject.Digest,
			PackageURL: ociPURL(subject),
		},
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication, Name: "krgeobuk-infra"}}},
	}
	if lf.Name != "" {
		bom.Metadata.Component.Description = "npm project " + lf.Name
	}
	bom.Components = &comps
	return bom, nil
}

// Encode is the BOM as CycloneDX JSON.
func Encode(bom *cdx.BOM) ([]byte, error) {
	var b bytes.Buffer
	if err := cdx.NewBOMEncoder(&b, cdx.BOMFileFormatJSON).Encode(bom); err != nil {
		return nil, fmt.Errorf("sbom: encode: %w", err)
	}
	return b.Bytes(), nil
}

// Decode reads a CycloneDX JSON document back; Subject is its subject.
func Decode(data []byte) (*cdx.BOM, error) {
	bom := new(cdx.BOM)
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(bom); err != nil {
		return nil, fmt.Errorf("sbom: not a CycloneDX JSON document: %w", err)
	}
	return bom, nil
}

// SubjectOf is the image a decoded BOM names as its subject.
func SubjectOf(bom *cdx.BOM) (Subject, bool) {
	if bom.Metadata == nil || bom.Metadata.Component == nil {
		return Subject{}, false
	}
	c := bom.Metadata.Component
	return Subject{Repository: c.Name, Digest: c.Version}, true
}

type lockPackage struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Integrity string `json:"integrity"`
	Dev       bool   `json:"dev"`
	Optional  bool   `json:"optional"`
	Link      bool   `json:"link"`
	License   any    `json:"license"`
}

func component(name string, p lockPackage) (cdx.Component, error) {
	purl := npmPURL(name, p.Version)
	c := cdx.Component{BOMRef: purl, Type: cdx.ComponentTypeLibrary, Name: name, Version: p.Version, PackageURL: purl, Scope: cdx.ScopeRequired}
	if i := strings.LastIndex(name, "/"); strings.HasPrefix(name, "@") && i > 0 {
		c.Group, c.Name = name[:i], name[i+1:]
	}
	switch {
	case p.Dev:
		c.Scope = cdx.ScopeExcluded
		c.Properties = &[]cdx.Property{{Name: "cdx:npm:package:development", Value: "true"}}
	case p.Optional:
		c.Scope = cdx.ScopeOptional
	}
	hashes, err := integrity(p.Integrity)
	if err != nil {
		return c, err
	}
	if len(hashes) > 0 {
		c.Hashes = &hashes
	}
	if l := licence(p.License); l != nil {
		c.Licenses = l
	}
	return c, nil
}

// integrity turns a Subresource Integrity string ("sha512-<base64>", maybe
// several separated by spaces) into hex hashes.
func integrity(sri string) ([]cdx.Hash, error) {
	var out []cdx.Hash
	for _, h := range strings.Fields(sri) {
		algo, b64, ok := strings.Cut(h, "-")
		if !ok {
			return nil, fmt.Errorf("integrity %q is not algorithm-base64", h)
		}
		var a cdx.HashAlgorithm
		switch algo {
		case "sha512":
			a = cdx.HashAlgoSHA512
		case "sha384":
			a = cdx.HashAlgoSHA384
		case "sha256":
			a = cdx.HashAlgoSHA256
		case "sha1":
			a = cdx.HashAlgoSHA1
		default:
			return nil, fmt.Errorf("integrity %q: unknown algorithm %q", h, algo)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("integrity %q: %w", h, err)
		}
		out = append(out, cdx.Hash{Algorithm: a, Value: hex.EncodeToString(raw)})
	}
	return out, nil
}

var spdxID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+-]*$`)

// licence is the lockfile's license field: an SPDX identifier, an SPDX
// expression ("MIT OR Apache-2.0"), or free text, kept as a name.
func licence(v any) *cdx.Licenses {
	s, ok := v.(string)
	if !ok || strings.TrimSpace(s) == "" {
		return nil
	}
	s = strings.TrimSpace(s)
	switch {
	case spdxID.MatchString(s):
		return &cdx.Licenses{{License: &cdx.License{ID: s}}}
	case strings.Contains(s, " OR ") || strings.Contains(s, " AND ") || strings.Contains(s, " WITH "):
		return &cdx.Licenses{{Expression: s}}
	}
	return &cdx.Licenses{{License: &cdx.License{Name: s}}}
}

// npmPURL is pkg:npm/<namespace>/<name>@<version>, the scope's @ encoded as
// the purl specification wants.
func npmPURL(name, version string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(url.PathEscape(p), "@", "%40")
	}
	return "pkg:npm/" + strings.Join(parts, "/") + "@" + url.PathEscape(version)
}

// ociPURL is pkg:oci/<name>@<digest>?repository_url=<repository>.
func ociPURL(s Subject) string {
	last := s.Repository[strings.LastIndex(s.Repository, "/")+1:]
	return "pkg:oci/" + url.PathEscape(last) + "@" + url.PathEscape(s.Digest) + "?repository_url=" + url.QueryEscape(s.Repository)
}
