// Package composecheck loads the data server's Docker Compose files the way
// `docker compose` does (compose-go) and checks the rules every service on
// the data server must follow: health checks, restart policies, limits, named
// data volumes, catalog ports, pinned images, no literal credentials, and
// Redis with a password and the append-only file.
package composecheck

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// Files are the compose files of the data server, relative to its folder.
// StackFiles are the ones `docker compose` uses by default there (the
// COMPOSE_FILE of .env.example); VerifyFile is started by the backup check.
var (
	StackFiles = []string{"docker-compose.auth.yml", "docker-compose.authz.yml", "docker-compose.monitoring.yml"}
	VerifyFile = "docker-compose.verify.yml"
)

// AllFiles returns every compose file of the data server.
func AllFiles() []string { return append(append([]string{}, StackFiles...), VerifyFile) }

// Input is one loaded set of compose files.
type Input struct {
	// Dir is the folder the files live in; relative bind mounts resolve
	// against it, and the rules read mounted config files from it.
	Dir string
	// Files are the compose files, in merge order.
	Files []string
	// Project is the model as `docker compose` sees it, interpolated with
	// the env file.
	Project *types.Project
	// Raw is the same model before interpolation: what is literally written
	// in the files, so ${VAR} references are still visible.
	Raw *types.Project
}

// Load loads files (relative to dir) with envFile as the .env, with every
// profile enabled, twice: interpolated and raw. Errors name the files.
func Load(ctx context.Context, dir string, files []string, envFile string) (*Input, error) {
	in := &Input{Dir: dir, Files: files}
	var err error
	if in.Project, err = load(ctx, dir, files, envFile, true); err != nil {
		return nil, err
	}
	if in.Raw, err = load(ctx, dir, files, envFile, false); err != nil {
		return nil, err
	}
	return in, nil
}

func load(ctx context.Context, dir string, files []string, envFile string, interpolate bool) (*types.Project, error) {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = filepath.Join(dir, f)
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithWorkingDirectory(dir),
		cli.WithEnvFiles(envFile),
		cli.WithDotEnv,
		cli.WithInterpolation(interpolate),
		// Uninterpolated, a bind mount like ${DIR:-/x}:/y looks like a named
		// volume; the raw model is only read for literal values.
		cli.WithConsistency(interpolate),
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return nil, fmt.Errorf("compose files %v: %w", files, err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("compose files %v: %w", files, err)
	}
	return p, nil
}
