// Package static holds the demo page (HTML, CSS and JavaScript ES modules,
// no build step) that the server embeds and serves at "/".
package static

import (
	"embed"
	"io/fs"
)

// files is read-only: embed.FS cannot be changed at run time.
//
//go:embed index.html app.css js/*.js
var files embed.FS

// FS returns the page's files, rooted so that "index.html" is at the top.
// Test files (js/*.test.mjs) are not embedded.
func FS() fs.FS {
	return files
}
