package convert

import "strings"

// printerWidth is the column at which the SDL printer wraps descriptions.
const printerWidth = 80

// unwrap undoes the line wrapping the SDL printer applied to descriptions:
// the engine serves each paragraph as one line, and codegen wraps comments
// itself. indent is the description's column in the SDL.
//
// The printer fills lines greedily up to printerWidth, so a break is taken as
// the printer's only where the next word would not have fitted, and a
// paragraph with a line wider than printerWidth was written by hand and kept
// as it is. Blank lines, list items, indented and fenced code stay apart.
func unwrap(desc string, indent int) string {
	paragraphs := strings.Split(desc, "\n\n")
	for i, p := range paragraphs {
		paragraphs[i] = unwrapParagraph(p, indent)
	}
	return strings.Join(paragraphs, "\n\n")
}

func unwrapParagraph(p string, indent int) string {
	lines := strings.Split(p, "\n")
	for _, line := range lines {
		if indent+len(line) > printerWidth {
			return p
		}
	}
	var out []string
	fenced := false
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			fenced = !fenced
			out = append(out, line)
			continue
		}
		if i == 0 || fenced || !joinable(lines[i-1]) || !joinable(line) || isItem(trimmed) ||
			indent+len(lines[i-1])+1+len(strings.Fields(trimmed)[0]) <= printerWidth {
			out = append(out, line)
			continue
		}
		out[len(out)-1] += " " + trimmed
	}
	return strings.Join(out, "\n")
}

// joinable tells whether a line is ordinary paragraph text.
func joinable(line string) bool {
	t := strings.TrimSpace(line)
	return t != "" && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(t, "```")
}

// isItem tells whether a line starts a Markdown list item.
func isItem(t string) bool {
	if strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* ") || strings.HasPrefix(t, "+ ") {
		return true
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	return i > 0 && i < len(t) && (t[i] == '.' || t[i] == ')')
}
