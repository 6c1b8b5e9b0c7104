package main

import (
	"context"
	"fmt"

	lib "dagger.io/dagger"

	"dagger/krgeobuk/internal/dagger"
)

// bridge hands objects between the module's generated client and the
// published dagger.io/dagger client that pipelines/ is written against. Both
// talk to the same session, so an object crosses by its ID.
type bridge struct {
	c *lib.Client
}

// connect opens the published client on the module's session. It sends no
// query; call it only after the arguments are checked.
func connect(ctx context.Context) (*bridge, error) {
	c, err := lib.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to the dagger session: %w", err)
	}
	return &bridge{c: c}, nil
}

func (b *bridge) close() { _ = b.c.Close() }

func (b *bridge) dir(ctx context.Context, d *dagger.Directory) (*lib.Directory, error) {
	id, err := d.ID(ctx)
	if err != nil {
		return nil, err
	}
	return b.c.LoadDirectoryFromID(lib.DirectoryID(id)), nil
}

func (b *bridge) secret(ctx context.Context, s *dagger.Secret) (*lib.Secret, error) {
	if s == nil {
		return nil, nil
	}
	id, err := s.ID(ctx)
	if err != nil {
		return nil, err
	}
	return b.c.LoadSecretFromID(lib.SecretID(id)), nil
}

// containers brings containers built by pipelines/ back to the module's
// client, so they can be returned to the caller.
func (b *bridge) containers(ctx context.Context, in []*lib.Container) ([]*dagger.Container, error) {
	out := make([]*dagger.Container, 0, len(in))
	for _, c := range in {
		id, err := c.ID(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, dag.LoadContainerFromID(dagger.ContainerID(id)))
	}
	return out, nil
}

// platforms converts the module's platform scalars.
func platforms(in []dagger.Platform) []string {
	out := make([]string, 0, len(in))
	for _, p := range in {
		out = append(out, string(p))
	}
	return out
}
