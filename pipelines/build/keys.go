package build

import (
	"maps"
	"slices"
)

// sortedKeys makes the order of calls deterministic, so the same inputs give
// the same graph and the same cache keys.
func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
