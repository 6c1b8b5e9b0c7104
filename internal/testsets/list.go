package testsets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
)

// List reads the packages matching patterns (e.g. ./...) with `go list` in dir and splits each.
// Packages without tests are left out.
func List(ctx context.Context, dir string, patterns ...string) ([]Package, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"list", "-json=ImportPath,Dir,GoFiles,TestGoFiles,XTestGoFiles"}, patterns...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("testsets: go list: %w: %s", err, stderr.String())
	}
	var pkgs []Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var f struct {
			ImportPath, Dir                    string
			GoFiles, TestGoFiles, XTestGoFiles []string
		}
		if err := dec.Decode(&f); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("testsets: go list output: %w", err)
		}
		if len(f.TestGoFiles)+len(f.XTestGoFiles) == 0 {
			continue
		}
		p, err := Split(Files{ImportPath: f.ImportPath, Dir: f.Dir, GoFiles: f.GoFiles, TestFiles: f.TestGoFiles, XTestFiles: f.XTestGoFiles})
		if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// Runs are the `go test` argument lists that run the container set of pkgs: one run for the
// packages with only light tests, one per package that also has heavy ones (its own -skip).
// flags go before the packages of every run.
func Runs(pkgs []Package, flags ...string) [][]string {
	var runs [][]string
	all := append([]string{"test"}, flags...)
	n := len(all)
	for _, p := range pkgs {
		switch {
		case len(p.Light) == 0:
		case len(p.Heavy) == 0:
			all = append(all, p.ImportPath)
		default:
			run := append(append([]string{"test"}, flags...), "-skip", p.SkipPattern(), p.ImportPath)
			runs = append(runs, run)
		}
	}
	if len(all) > n {
		runs = append([][]string{all}, runs...)
	}
	return runs
}
