// Package tuist is a compile-only stand-in for github.com/vito/tuist, which the Go module proxy
// does not serve: the names dagger v0.21.8's CLI uses, doing nothing. The CLI built with it runs
// only its plain and logs progress modes, which never start this terminal UI.
package tuist

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	uv "github.com/charmbracelet/ultraviolet"
)

// errNoTUI is what starting the terminal UI returns: this build has none.
var errNoTUI = errors.New("the interactive terminal UI is not available in this build of dagger (use --progress=plain)")

// Context is what components render into; Width and Height are the layout constraints. Lines
// written during a render are kept, so a component can be rendered to text (dagger's test
// summaries are).
type Context struct {
	context.Context
	Width, Height int
	out           *[]string
}

func (ctx Context) Line(s string) { ctx.Lines(s) }
func (ctx Context) Lines(ss ...string) {
	if ctx.out != nil {
		*ctx.out = append(*ctx.out, ss...)
	}
}
func (Context) SetCursor(int, int)                                    {}
func (Context) ScreenHeight() int                                     { return 0 }
func (ctx Context) Resize(w, h int) Context                           { ctx.Width, ctx.Height = w, h; return ctx }
func (Context) SetFocus(Component)                                    {}
func (Context) ShowOverlay(Component, *OverlayOptions) *OverlayHandle { return &OverlayHandle{} }
func (Context) RequestRender(bool)                                    {}
func (Context) Dispatch(fn func())                                    {}

// Compo is embedded by every component.
type Compo struct{}

func (c *Compo) compo() *Compo { return c }
func (*Compo) Update()         {}

// RenderResult is a component's rendered lines.
type RenderResult struct{ Lines []string }

// RenderChildResult renders child into its own lines.
func (*Compo) RenderChildResult(ctx Context, child Component) RenderResult {
	var lines []string
	ctx.out = &lines
	if ctx.Context == nil {
		ctx.Context = context.Background()
	}
	child.Render(ctx)
	return RenderResult{Lines: lines}
}

// RenderChild renders child into ctx's output.
func (c *Compo) RenderChild(ctx Context, child Component) {
	ctx.Lines(c.RenderChildResult(ctx, child).Lines...)
}

// RenderChildInline renders child as one string.
func (c *Compo) RenderChildInline(ctx Context, child Component) string {
	return strings.Join(c.RenderChildResult(ctx, child).Lines, "\n")
}

// Component is anything that renders lines.
type Component interface {
	compo() *Compo
	Render(ctx Context)
}

type Interactive interface {
	Component
	HandleKeyPress(ctx Context, ev uv.KeyPressEvent) bool
}

type MouseEvent struct {
	uv.MouseEvent
	Row, Col int
}

type MouseEnabled interface {
	Component
	HandleMouse(ctx Context, ev MouseEvent) bool
}

type Hoverable interface {
	SetHovered(ctx Context, hovered bool)
}
type Focusable interface {
	SetFocused(ctx Context, focused bool)
}
type Mounter interface{ OnMount(ctx Context) }
type Dismounter interface{ OnDismount() }

// Container holds child components.
type Container struct {
	Compo
	Children []Component
}

func (c *Container) AddChild(comp Component) { c.Children = append(c.Children, comp) }
func (c *Container) RemoveChild(comp Component) {
	for i, ch := range c.Children {
		if ch == comp {
			c.Children = append(c.Children[:i], c.Children[i+1:]...)
			return
		}
	}
}
func (c *Container) Clear()       { c.Children = nil }
func (*Container) Render(Context) {}

// Terminal is the TUI's output device.
type Terminal interface {
	Start(onInput func([]byte), onResize func()) error
	Stop()
	Write(p []byte)
	Columns() int
	Rows() int
}

type stdTerminal struct{}

func (stdTerminal) Start(func([]byte), func()) error { return errNoTUI }
func (stdTerminal) Stop()                            {}
func (stdTerminal) Write([]byte)                     {}
func (stdTerminal) Columns() int                     { return 80 }
func (stdTerminal) Rows() int                        { return 24 }

func NewStdTerminal() Terminal { return stdTerminal{} }

// TUI would drive the terminal; Start refuses.
type TUI struct{ Container }

func New(Terminal) *TUI                                                           { return &TUI{} }
func (*TUI) Start() error                                                         { return errNoTUI }
func (*TUI) Stop()                                                                {}
func (*TUI) SetFocus(Component)                                                   {}
func (*TUI) SetDebugWriter(io.Writer)                                             {}
func (*TUI) SetShowHardwareCursor(bool)                                           {}
func (*TUI) ShowOverlay(Component, *OverlayOptions) *OverlayHandle                { return &OverlayHandle{} }
func (*TUI) Dispatch(fn func())                                                   { fn() }
func (*TUI) RequestRender(bool)                                                   {}
func (*TUI) RenderLines() []string                                                { return nil }
func (*TUI) Exec(func(in io.Reader, out io.Writer, errOut io.Writer) error) error { return errNoTUI }

type OverlayAnchor int

const (
	AnchorCenter OverlayAnchor = iota
	AnchorTopLeft
	AnchorTopRight
)

type OverlayMargin struct{ Top, Right, Bottom, Left int }

type SizeValue struct{ abs int }

func SizeAbs(n int) SizeValue { return SizeValue{abs: n} }

type OverlayOptions struct {
	Width  SizeValue
	Anchor OverlayAnchor
	Margin OverlayMargin
}

type OverlayHandle struct{}

func (*OverlayHandle) Remove() {}

// Spinner is an animated status icon.
type Spinner struct {
	Compo
	Epoch time.Time
}

func NewSpinner() *Spinner      { return &Spinner{} }
func (*Spinner) Render(Context) {}

// TextInput is an editable line.
type TextInput struct {
	Compo
	Prompt         string
	OnSubmit       func(ctx Context, value string) bool
	KeyInterceptor func(ctx Context, ev uv.KeyPressEvent) bool
	value          string
}

func NewTextInput(prompt string) *TextInput { return &TextInput{Prompt: prompt} }
func (t *TextInput) Value() string          { return t.value }
func (t *TextInput) SetValue(s string)      { t.value = s }
func (t *TextInput) InsertRune(r rune)      { t.value += string(r) }
func (*TextInput) Render(Context)           {}

// Completion is one shell completion candidate; CompletionResult a set of them.
type Completion struct {
	Label, DisplayLabel, Detail, Documentation, Kind, InsertText string
}

type CompletionResult struct {
	Items       []Completion
	ReplaceFrom int
}

type CompletionMenu struct{}

func NewCompletionMenu(*TextInput, func(input string, cursorPos int) CompletionResult) *CompletionMenu {
	return &CompletionMenu{}
}
func (*CompletionMenu) HandleKeyPress(Context, uv.KeyPressEvent) bool { return false }
