// Package teav1 is a compile-only stand-in for github.com/vito/tuist/teav1 (not served by the Go
// module proxy): the bubbletea v1 adapter dagger's terminal UI uses for its forms.
package teav1

import "github.com/vito/tuist"

// Wrap would adapt a bubbletea v1 model into a component.
type Wrap struct{ tuist.Compo }

func New(any) *Wrap                { return &Wrap{} }
func (*Wrap) OnQuit(func())        {}
func (*Wrap) Render(tuist.Context) {}
