package emulation

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildArm64 compiles src, a one-file main package using the standard
// library only, for linux/arm64 into dir and returns the program's path:
// the foreign program the emulation tests (here and in e2e) run.
func BuildArm64(ctx context.Context, dir, src string) (string, error) {
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module arch\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "arch")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build for linux/arm64: %w\n%s", err, out)
	}
	return bin, nil
}
