package dataset

import "strings"

// DocText is the text a document is trained on: title and body joined by a
// space, as a BEIR cross-encoder sees them. Serving must join the same way.
func DocText(title, text string) string {
	title, text = strings.TrimSpace(title), strings.TrimSpace(text)
	switch {
	case title == "":
		return text
	case text == "":
		return title
	}
	return title + " " + text
}
