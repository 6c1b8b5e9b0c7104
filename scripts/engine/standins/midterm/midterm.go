// Package midterm is a stand-in for github.com/vito/midterm (not served by the Go module proxy):
// instead of a virtual terminal, Terminal keeps the lines written to it, which is what dagger's
// plain and logs progress modes print. Search finds nothing; escape sequences are kept as written.
package midterm

import (
	"io"
	"strings"
)

// Format is a text style; only Reset is used.
type Format struct{}

// Reset is the escape sequence that ends every style.
var Reset Format

func (Format) Render() string { return "\x1b[0m" }

// SearchMatch is one search hit.
type SearchMatch struct{ Row, Col, Len int }

// Terminal holds the lines written to it: Content[row] is a line without its newline.
type Terminal struct {
	Content       [][]rune
	AutoResizeX   bool
	SearchMatches []SearchMatch
	open          bool // the last line has no newline yet
}

func NewAutoResizingTerminal() *Terminal { return &Terminal{AutoResizeX: true} }

// Write splits p into lines, continuing the last one if it was left open.
func (t *Terminal) Write(p []byte) (int, error) {
	for _, part := range strings.SplitAfter(string(p), "\n") {
		if part == "" {
			continue
		}
		text := []rune(strings.TrimSuffix(strings.TrimSuffix(part, "\n"), "\r"))
		if t.open {
			last := len(t.Content) - 1
			t.Content[last] = append(t.Content[last], text...)
		} else {
			t.Content = append(t.Content, text)
		}
		t.open = !strings.HasSuffix(part, "\n")
	}
	return len(p), nil
}

// UsedHeight is the number of lines written.
func (t *Terminal) UsedHeight() int { return len(t.Content) }

func (t *Terminal) RenderLine(w io.Writer, row int) error {
	if row < 0 || row >= len(t.Content) {
		return nil
	}
	_, err := io.WriteString(w, string(t.Content[row]))
	return err
}

func (t *Terminal) RenderLineFgBg(w io.Writer, row int, _, _ any) error { return t.RenderLine(w, row) }

func (*Terminal) ResizeX(int)                         {}
func (*Terminal) Search(string) int                   { return 0 }
func (*Terminal) SearchClear()                        {}
func (*Terminal) SearchSetCurrent(int) (row, col int) { return -1, -1 }
func (*Terminal) SearchMatchRows() []int              { return nil }
