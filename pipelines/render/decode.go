package render

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// Object is one rendered document: its typed form when the kind is built into
// Kubernetes, its unstructured form always, and the template it came from.
type Object struct {
	// Source is the chart template that produced the document ("" if unknown).
	Source string
	// Typed is the strictly decoded built-in object, nil for custom resources.
	Typed runtime.Object
	// U is the object as plain maps, for generic checks and server calls.
	U *unstructured.Unstructured
}

// GVK returns the object's group, version and kind.
func (o Object) GVK() schema.GroupVersionKind { return o.U.GroupVersionKind() }

// Ref names the object the way error messages and reports do:
// Kind/namespace/name (namespace omitted when empty).
func (o Object) Ref() string {
	if ns := o.U.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s/%s/%s", o.U.GetKind(), ns, o.U.GetName())
	}
	return fmt.Sprintf("%s/%s", o.U.GetKind(), o.U.GetName())
}

var (
	sourceLine = regexp.MustCompile(`(?m)^# Source: (.+)$`)
	strict     = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
)

// Decode splits a manifest stream and decodes every document. Built-in kinds
// are decoded strictly, so a misspelt or misplaced field (which the API server
// would silently drop or reject) fails here with the object and template
// named. Unknown kinds (custom resources) stay unstructured.
func Decode(manifest string) ([]Object, error) {
	var out []Object
	for _, doc := range SplitManifest(manifest) {
		obj, err := DecodeDocument(doc)
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

// DecodeDocument decodes one YAML document (see Decode).
func DecodeDocument(doc string) (Object, error) {
	src := ""
	if m := sourceLine.FindStringSubmatch(doc); m != nil {
		src = strings.TrimSpace(m[1])
	}
	raw, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return Object{}, fmt.Errorf("%s: not YAML: %w", orUnknown(src), err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return Object{}, fmt.Errorf("%s: %w", orUnknown(src), err)
	}
	obj := Object{Source: src, U: u}
	if !scheme.Scheme.Recognizes(u.GroupVersionKind()) {
		return obj, nil
	}
	typed, _, err := strict.Decode([]byte(doc), nil, nil)
	if err != nil {
		return Object{}, fmt.Errorf("%s (%s): strict decode: %w", obj.Ref(), orUnknown(src), err)
	}
	obj.Typed = typed
	return obj, nil
}

func orUnknown(src string) string {
	if src == "" {
		return "unknown template"
	}
	return src
}
