package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/preflight"
	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/rootfs"
)

// Unpack extracts img's layers, bottom first, into dir.
func Unpack(ctx context.Context, img v1.Image, dir string) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "-xpf", "-", "-C", dir)
		cmd.Stdin = rc
		out, err := cmd.CombinedOutput()
		_ = rc.Close()
		if err != nil {
			return fmt.Errorf("unpack layer %d: %w\n%s", i, err, out)
		}
	}
	return nil
}

// Prove unpacks the layout into a scratch rootfs and runs there, with no
// network, what the engine runs in the image for this repository's module:
// codegen generate-module, the typedefs step's go get, and go build.
func (g *GoSDK) Prove(ctx context.Context, layoutDir string, log io.Writer) error {
	if err := g.defaults(); err != nil {
		return err
	}
	img, err := ReadLayout(layoutDir)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	tmpRoot := filepath.Join(g.Cache, "tmp")
	if err := ProvePreflight(tmpRoot).Check(); err != nil {
		return err
	}
	if err := os.MkdirAll(tmpRoot, 0o755); err != nil {
		return fmt.Errorf("go-sdk proof scratch: %w", err)
	}
	scratch, err := os.MkdirTemp(tmpRoot, "go-sdk-prove-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(scratch) }()
	root := filepath.Join(scratch, "rootfs")
	if err := Unpack(ctx, img, root); err != nil {
		return err
	}
	if err := g.buildModuleIn(ctx, root, cf.Config.Env, log); err != nil {
		return fmt.Errorf("go-sdk image %s: %w", layoutDir, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "runtime")); err != nil || fi.Size() == 0 {
		return fmt.Errorf("go-sdk image %s: go build left no /runtime", layoutDir)
	}
	return nil
}

// ProvePreflight is what the offline proof needs in its scratch root: the
// rootfs tools, git, and room for the unpacked image and the module's build
// (an estimate).
func ProvePreflight(tmpRoot string) preflight.Step {
	tools := map[string]string{"git": "git"}
	for k, v := range RootfsTools {
		tools[k] = v
	}
	return preflight.Step{
		Name:  "Go SDK image proof",
		Rerun: "go -C scripts/images run . prove-go-sdk",
		Tools: tools,
		Dirs:  []preflight.Dir{{Path: tmpRoot, Need: 5 * preflight.GiB, What: "the unpacked Go SDK image and the module built in it"}},
	}
}

// buildModuleIn copies the module into root/src and runs there, chrooted
// with no network and env, the engine's steps: codegen generate-module, the
// typedefs step's go get, and go build to /runtime.
func (g *GoSDK) buildModuleIn(ctx context.Context, root string, env []string, log io.Writer) error {
	cfg, err := CopyModule(g.Repo, filepath.Join(root, "src"))
	if err != nil {
		return err
	}
	if err := Introspection(ctx, g.Repo, filepath.Join(root, "schema.json")); err != nil {
		return err
	}
	env = append(append([]string{}, env...), "HOME=/root")
	wd := "/src/" + cfg.Source
	steps := [][]string{
		{"codegen", "generate-module", "--output", "/src", "--module-source-path", wd, "--module-name", cfg.Name,
			"--introspection-json-path", "/schema.json", "--lib-version", LibCommit},
		{"go", "get", "dagger.io/dagger@" + LibCommit, "github.com/dagger/querybuilder"},
		{"go", "build", "-ldflags", "-s -w", "-o", "/runtime", "."},
	}
	for _, s := range steps {
		fmt.Fprintf(log, "go-sdk (offline chroot): %v\n", s)
		if err := rootfs.Run(ctx, root, rootfs.Opts{Offline: true, Env: env, Dir: wd}, s...); err != nil {
			return err
		}
	}
	return nil
}
