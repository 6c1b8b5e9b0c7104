package daggercli

import (
	"fmt"
	"regexp"
	"strings"
)

// Flag is one argument of a function as `dagger call <fn> --help` prints it.
type Flag struct {
	Name, Type, Description string
	Required                bool
}

// flagLine is pflag's usage line: "      --name type   description", the type absent for booleans.
var flagLine = regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9-]+)(?: ([A-Za-z][\w.\[\]]*))?(?:\s{2,}(.*))?$`)

// ParseHelp reads the ARGUMENTS section of `dagger call <fn> --help`. Description lines the
// CLI wrapped are joined; "[required]" at the end of a description sets Required.
func ParseHelp(help string) ([]Flag, error) {
	var flags []Flag
	in := false
	for _, line := range strings.Split(ansiEscape.ReplaceAllString(help, ""), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && trimmed == "ARGUMENTS":
			in = true
			continue
		case !in:
			continue
		case trimmed == "":
			continue
		case !strings.HasPrefix(line, " "):
			in = false // the next section
			continue
		}
		if m := flagLine.FindStringSubmatch(line); m != nil {
			flags = append(flags, Flag{Name: m[1], Type: m[2], Description: strings.TrimSpace(m[3])})
			continue
		}
		if len(flags) == 0 {
			return nil, fmt.Errorf("ARGUMENTS: unexpected line %q", line)
		}
		last := &flags[len(flags)-1]
		last.Description = strings.TrimSpace(last.Description + " " + trimmed)
	}
	for i := range flags {
		if d, ok := strings.CutSuffix(flags[i].Description, "[required]"); ok {
			flags[i].Description, flags[i].Required = strings.TrimSpace(d), true
		}
	}
	return flags, nil
}

// functionLine is a row of `dagger functions`: a kebab-case name, then its description.
var functionLine = regexp.MustCompile(`^([a-z][a-z0-9-]*)(?:\s{2,}(.*))?$`)

// ParseFunctions reads the names of `dagger functions`' table (after its Name/Description header).
func ParseFunctions(out string) []string {
	var names []string
	header := false
	for _, line := range strings.Split(ansiEscape.ReplaceAllString(out, ""), "\n") {
		if !header {
			header = strings.HasPrefix(strings.TrimSpace(line), "Name")
			continue
		}
		if m := functionLine.FindStringSubmatch(line); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}
